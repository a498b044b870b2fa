"""Secrets never leak: distinctive secret values go in through every configuration path that can
carry one (a PostgreSQL source's and the registry's URL, the Redis online store's URL, the API
keys from a file and from the environment, the alert webhook's URL, the signing key), the
commands that touch them run (their error paths included: a server that is down, a password
Redis refuses), and no file the run leaves, no output and no log holds any of them: as
written, URL-encoded, or base64-encoded (alone, or as ``user:secret``)."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from tests.conftest import require_service
from tests.serving.conftest import serving, variant
from tests.serving.test_events import names, post, publisher

from taxiway.cli import main
from taxiway.errors import MonitoringError
from taxiway.monitoring.webhook import check_url, post_json

# each secret with a `/`, `+` or `=`, so its URL-encoded form differs from it
PG_PASSWORD = "pg/Secret+Pw=4TQ9"
REGISTRY_PASSWORD = "reg/Secret+Pw=8KD2"
REDIS_PASSWORD = "redis/Secret+Pw=3JX7"
API_KEY_ENV = "apikey-env-Secret-5VN1-0123456789"
API_KEY_FILE = "apikey-file-Secret-2HB6-0123456789"
WEBHOOK_TOKEN = "hook/Secret+Tok=9MZ4"
SIGNING_KEY = "signing-Secret-7RW3-0123456789"
SECRETS = [
    PG_PASSWORD,
    REGISTRY_PASSWORD,
    REDIS_PASSWORD,
    API_KEY_ENV,
    API_KEY_FILE,
    WEBHOOK_TOKEN,
    SIGNING_KEY,
]
USER = "svc"

__all__ = ["names"]  # test_events' fixture: a subject and stream of its own, deleted after


def forms(secret: str) -> list[str]:
    """How a secret can show up: as is, URL-encoded, base64 alone and as basic auth."""
    encoded = [base64.b64encode(text.encode()).decode() for text in (secret, f"{USER}:{secret}")]
    return [secret, quote(secret, safe=""), *encoded]


ENV = {
    "TW_SEC_PG_URL": f"postgresql://{USER}:{quote(PG_PASSWORD, safe='')}@127.0.0.1:5432/test",
    "TW_SEC_PG_DOWN_URL": f"postgresql://{USER}:{quote(PG_PASSWORD, safe='')}@127.0.0.1:1/test",
    "TW_SEC_REG_URL": f"postgresql://{USER}:{quote(REGISTRY_PASSWORD, safe='')}@127.0.0.1:1/x",
    "TW_SEC_REDIS_URL": f"redis://{USER}:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:6379/0",
    "TW_SEC_API_KEY": API_KEY_ENV,
    "TW_SEC_WEBHOOK": (
        f"http://{USER}:{quote(WEBHOOK_TOKEN, safe='')}@127.0.0.1:1/hook"
        f"?token={quote(WEBHOOK_TOKEN, safe='')}"
    ),
    "TW_SEC_SIGNING": SIGNING_KEY,
}


class Run:
    """What the commands printed and logged, kept to be searched."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
        self.capsys, self.caplog = capsys, caplog
        self.outputs: list[str] = []

    def cli(self, *argv: str) -> int:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        self.outputs += [captured.out, captured.err, self.caplog.text]
        self.caplog.clear()
        return code

    def keep(self, text: str) -> None:
        self.outputs.append(text)


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    return Run(capsys, caplog)


def _spec(shop: Path, folder: Path, *, replace: dict[str, str], append: str = "") -> Path:
    folder.mkdir()
    text = shop.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return variant(shop, folder, text, append=append)


def _leaks(root: Path, outputs: list[str], skip: set[Path]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path in skip:
            continue
        data = path.read_bytes()
        for secret in SECRETS:
            for form in forms(secret):
                if form.encode() in data:
                    found.append(f"{path.relative_to(root)} holds {form!r}")
    for number, text in enumerate(outputs):
        for secret in SECRETS:
            for form in forms(secret):
                if form in text:
                    at = text.index(form)
                    found.append(
                        f"output {number} holds {form!r}: {text[max(0, at - 80) : at + 40]!r}"
                    )
    return found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_no_secret_appears_in_any_file_output_or_log(shop: Path, tmp_path: Path, run: Run) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    keys = tmp_path / "keys"
    keys.write_text(f"{API_KEY_FILE} predict,outcomes\n")
    sources = _spec(
        shop,
        tmp_path / "sources",
        replace={
            "sources:\n": "sources:\n"
            "  crm:\n    kind: postgres\n    url: ${TW_SEC_PG_URL}\n"
            "    table: tw_sec_no_such_table\n"
            "  crm_down:\n    kind: postgres\n    url: ${TW_SEC_PG_DOWN_URL}\n"
            "    table: accounts\n"
        },
    )
    registry = _spec(
        shop,
        tmp_path / "registry",
        replace={},
        append="registry:\n  kind: postgres\n  url: ${TW_SEC_REG_URL}\n",
    )
    redis_store = _spec(
        shop,
        tmp_path / "redis",
        replace={},
        append="online_store:\n  kind: redis\n  url: ${TW_SEC_REDIS_URL}\n",
    )
    served = _spec(
        shop,
        tmp_path / "served",
        replace={
            "serving:\n": f"serving:\n  auth: {{keys_file: {keys}, key_env: TW_SEC_API_KEY}}\n",
            "monitoring:\n": "monitoring:\n  webhook: ${TW_SEC_WEBHOOK}\n",
            "governance:\n": "governance:\n  signing_key_env: TW_SEC_SIGNING\n",
        },
    )
    state = tmp_path / "served" / "state"
    shutil.copytree(
        shop.parent / ".taxiway",
        state,
        ignore=shutil.ignore_patterns("predictions", "outcomes", "monitor", "governance"),
    )

    # the sources: one server refuses the table, one is down
    assert run.cli("check", "-f", str(sources)) != 0
    assert "crm_down" in run.outputs[-3] + run.outputs[-2], run.outputs[-3:]
    # the registry's server is down
    assert run.cli("models", "list", "-f", str(registry)) != 0
    assert "127.0.0.1:1" in run.outputs[-2], run.outputs[-3:]
    # Redis has no password set: it refuses the one given
    assert run.cli("features", "materialize", "-f", str(redis_store), "--as-of", "2025-12-31") != 0
    assert "Redis" in run.outputs[-2], run.outputs[-3:]
    # the service with both keys, its answers, and what it shows without a key
    body = {"entities": {"customer": "100017"}}
    with (
        serving(served, "--state-dir", str(state), env=ENV) as server,
        server.client() as client,
    ):
        for key, status in ((API_KEY_ENV, 200), (API_KEY_FILE, 200), ("wrong-key-012345678", 401)):
            answer = client.post("/v1/predict", json=body, headers={"X-API-Key": key})
            assert answer.status_code == status, answer.text
            run.keep(answer.text)
        answer = client.post("/v1/predict", json=body, headers={"X-API-Key": API_KEY_ENV})
        outcome = {"request_id": answer.json()["request_id"], "name": "churned", "value": 1}
        run.keep(
            client.post("/v1/outcomes", json=outcome, headers={"X-API-Key": API_KEY_FILE}).text
        )
        for path in ("/metrics", "/openapi.json", "/v2", "/dashboard/data.json"):
            run.keep(client.get(path).text)
    run.keep(server.output())
    common = ["-f", str(served), "--state-dir", str(state)]
    run.cli("monitor", *common, "--json")
    assert run.cli("approve", *common, "--role", "security", "--by", "Tester") == 0
    assert run.cli("approve", *common, "--list", "--json") == 0
    assert run.cli("forget", "--unit", "100017", *common) == 0
    # the alert webhook: a server that is down, and a URL of the wrong scheme
    result = post_json(ENV["TW_SEC_WEBHOOK"], {"alert": "x"}, tries=1, sleep=lambda _: None)
    run.keep(json.dumps(result.to_dict()))
    with pytest.raises(MonitoringError) as error:
        check_url(ENV["TW_SEC_WEBHOOK"].replace("http://", "ftp://"))
    run.keep(f"{error.value}\n{error.value.fix}")

    assert '"mac"' in (state / "governance" / "approvals.jsonl").read_text()  # signed
    assert _leaks(tmp_path, run.outputs, skip={keys}) == []


def test_the_search_finds_each_form_of_a_secret(tmp_path: Path) -> None:
    for number, form in enumerate(forms(WEBHOOK_TOKEN)):
        (tmp_path / f"f{number}").write_text(f"prefix {form} suffix")
    assert len(_leaks(tmp_path, [], skip=set())) == 4
    assert len(_leaks(tmp_path, [f"x{quote(PG_PASSWORD, safe='')}"], skip=set())) == 5


NATS_TOKEN = "nats/Secret+Tok=6PL1"


@pytest.mark.nats
@pytest.mark.parametrize("port", [1, 4222], ids=["down", "up"])
def test_a_nats_url_with_a_token_never_shows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    names: tuple[str, str],
    port: int,
) -> None:
    monkeypatch.setenv("TW_SEC_NATS_URL", f"nats://{quote(NATS_TOKEN, safe='')}@127.0.0.1:{port}")
    caplog.set_level(logging.DEBUG)
    subject, stream = names  # the stream is deleted after the test
    events = publisher(tmp_path, "${TW_SEC_NATS_URL}", subject, stream)
    event = {"k": 7, "ts": "2026-03-01T10:00:00Z", "v": 2.5}
    answers = post(events, [("ev", event, {"Idempotency-Key": "e-1"})])
    texts = [a.text for a in answers] + [json.dumps(dict(a.headers)) for a in answers]
    assert answers[0].status_code == (503 if port == 1 else 202), answers[0].text
    files = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    shown = [*texts, caplog.text, *(data.decode(errors="replace") for data in files)]
    assert [form for text in shown for form in forms(NATS_TOKEN) if form in text] == []
