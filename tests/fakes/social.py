"""The social channels as the contract tests drive them: each provider's setup, fake, counts and own words.

`tests/test_social_contract.py` proves with these what every social channel promises; each provider's own
module (`tests/test_x.py`...) uses the same account and secrets for what only that provider does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.conftest import Result, deliveries, run_trigger
from tests.fakes import bluesky_api, mastodon_api, telegram_api, x_api
from tests.fakes.provider import Answer, ProviderFake, Received, add_channel

X_CREDENTIALS = x_api.Credentials(
    consumer_key="ck-7Hq2Vb9LmZ4xRt1Nw8Ys3Pd6",
    consumer_secret="cs-Kf5Gh8Jk2Lq9Wz4Xc7Vb1Nm3Qr6Ts0Ue",
    access_token="at-1860000000-Yp4Rt7Uw2Ie5Oq8As1Df3Gh6Jk9",
    access_token_secret="ats-Zx2Cv5Bn8Mq1Wr4Ty7Ui0Op3As6",
)
MASTODON_TOKEN = "mst-Qf8Zr2Lx6Vb1Nw4Ks7Tp0Yh3Gj5Dc9"
BLUESKY_HANDLE = "example-support.bsky.social"
BLUESKY_PASSWORD = "k7qz-m2xw-p9rt-v4hn"
BLUESKY_SESSION = "com.atproto.server.createSession"
BLUESKY_CREATE = "com.atproto.repo.createRecord"
TELEGRAM_TOKEN = "7351824690:AAF3kq9Zx2Lm8Vb4Nc7Rt1Yp6Hs0Wd5Eg"
TELEGRAM_CHANNEL_ID = -1001987654321


@dataclass(frozen=True)
class Provider:
    """One social channel as the contract tests drive it: its setup, its fake, and its own words."""

    name: str
    # The provider's name as its errors say it ("X rate limit reached").
    label: str
    start: Callable[[], ProviderFake]
    settings: Callable[[str], dict[str, Any]]
    # The variables holding the secrets; Telegram's is in the home's .env instead.
    env: dict[str, str]
    dotenv: dict[str, str]
    secrets: tuple[str, ...]
    post_route: str
    posts: Callable[[Any], list[Received]]
    stored: Callable[[Any], int]
    # What tells two requests apart as two deliveries (a retry of one post carries the same).
    post_key: Callable[[Received], Any]
    server_error: Answer
    # The variables set to a secret the provider refuses, and its exact words then.
    revoked: dict[str, str]
    refused: str
    # Every request the fake receives in a run whose secret is refused, by route.
    asked_when_refused: Counter[str]
    # Scripts the fake to refuse the secret in the next run, however many sign-ins or posts it makes.
    refuse: Callable[[Any], None]
    # The other channels of the starter home once this one is added (X replaces the starter's own `x`).
    other_deliveries: int = 6
    # A 429 that names the epoch second the limit ends at; None where the provider names seconds to wait.
    rate_limited: Callable[[int], Answer] | None = None
    # Whether a post retried after a lost answer, or resumed, is found and not posted again.
    deduplicates: bool = False
    found_again_note: str | None = None
    # Whether the delivery found again knows the post's id (X's duplicate refusal does not give it).
    found_again_with_id: bool = True
    # Whether the retried delivery records the very post the first attempt made (fake, first request, delivery).
    names_the_first_post: Callable[[Any, Received, dict[str, Any]], bool] | None = None
    # How long an unreachable API is retried before the delivery fails.
    retry_for: str = "1s"

    def use(self, home: Path, api_base: str, **settings: Any) -> None:
        """Add this channel, reaching the provider at `api_base`, to every phase of the starter home."""
        add_channel(home, self.name, {**self.settings(api_base), **settings}, env=self.dotenv or None)

    def trigger(self, home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
        """`playbook trigger` with the provider's secrets (or `env`): the result and its JSON."""
        return run_trigger(home, *args, env=self.env if env is None else env)

    def posted(self, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """This channel's deliveries in a run's JSON, by language."""
        return deliveries(data, self.name)


def _record_key(delivery: dict[str, Any]) -> str:
    return str(delivery["remote_id"]).partition("|")[0].rsplit("/", 1)[-1]


X = Provider(
    name="x", label="X",
    start=lambda: x_api.FakeXApi(X_CREDENTIALS),
    settings=lambda url: {"type": "x", "consumer_key": "${X_CONSUMER_KEY}", "consumer_secret": "${X_CONSUMER_SECRET}",
                          "access_token": "${X_ACCESS_TOKEN}", "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
                          "api_base": url},
    env={"X_CONSUMER_KEY": X_CREDENTIALS.consumer_key, "X_CONSUMER_SECRET": X_CREDENTIALS.consumer_secret,
         "X_ACCESS_TOKEN": X_CREDENTIALS.access_token, "X_ACCESS_TOKEN_SECRET": X_CREDENTIALS.access_token_secret},
    dotenv={},
    secrets=tuple(X_CREDENTIALS.values()),
    post_route="/2/tweets",
    posts=lambda fake: fake.posts(),
    stored=lambda fake: len(fake.tweets),
    post_key=lambda request: request.json,
    server_error=x_api.Answer.server_error(503),
    revoked={"X_CONSUMER_KEY": "ck-revoked-Qw3Er6Ty9Ui2"},
    refused=("X refused the credentials (401): regenerate the access token and secret in the X developer portal "
             "(and check the consumer key and secret), then update X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET "
             "(or whichever variables channels.yaml names for them)"),
    asked_when_refused=Counter({"/2/tweets": 2}),
    refuse=lambda fake: fake.script("/2/tweets", x_api.Answer.unauthorized(), x_api.Answer.unauthorized()),
    other_deliveries=4,
    rate_limited=x_api.Answer.rate_limited,
    deduplicates=True,
    found_again_note="X reports a duplicate: already posted (this exact text is on the timeline)",
    found_again_with_id=False,
)

MASTODON = Provider(
    name="mastodon", label="Mastodon",
    start=lambda: mastodon_api.FakeMastodon(MASTODON_TOKEN),
    settings=lambda url: {"type": "mastodon", "api_base": url, "access_token": "${MASTODON_TOKEN}"},
    env={"MASTODON_TOKEN": MASTODON_TOKEN},
    dotenv={},
    secrets=(MASTODON_TOKEN,),
    post_route="/api/v1/statuses",
    posts=lambda fake: fake.posts(),
    stored=lambda fake: len(fake.statuses),
    post_key=lambda request: request.headers["idempotency-key"],
    server_error=mastodon_api.Answer.server_error(503),
    revoked={"MASTODON_TOKEN": "mst-revoked-Hh2Jj4Kk6"},
    refused=("Mastodon refused the access token (HTTP 401: The access token is invalid): generate a new one in "
             "Preferences > Development (open the application, or create one with the write:statuses and "
             "read:accounts scopes), then put it in the variable channels.yaml names for access_token"),
    # The instance's limit is read once for the run, without the token, before the first status.
    asked_when_refused=Counter({"/api/v2/instance": 1, "/api/v1/statuses": 2}),
    refuse=lambda fake: fake.script("/api/v1/statuses", mastodon_api.Answer.unauthorized(),
                                    mastodon_api.Answer.unauthorized()),
    # Mastodon names the reset as an ISO 8601 date in X-RateLimit-Reset, not in epoch seconds.
    rate_limited=lambda reset: mastodon_api.Answer.rate_limited(datetime.fromtimestamp(reset, UTC)),
    deduplicates=True,
    # The retry carries the first attempt's Idempotency-Key and is answered with the status it created.
    names_the_first_post=lambda fake, first, delivery: (
        fake.statuses[delivery["remote_id"]]["idempotency_key"] == first.headers["idempotency-key"]),
)

BLUESKY = Provider(
    name="bluesky", label="Bluesky",
    start=lambda: bluesky_api.FakeBluesky(BLUESKY_HANDLE, BLUESKY_PASSWORD),
    settings=lambda url: {"type": "bluesky", "handle": f"@{BLUESKY_HANDLE}",
                          "app_password": "${BLUESKY_APP_PASSWORD}", "api_base": url},
    env={"BLUESKY_APP_PASSWORD": BLUESKY_PASSWORD},
    dotenv={},
    secrets=(BLUESKY_PASSWORD,),
    post_route=BLUESKY_CREATE,
    posts=lambda fake: fake.requests(BLUESKY_CREATE),
    stored=lambda fake: len(fake.records),
    post_key=lambda request: request.params["rkey"],
    server_error=bluesky_api.Answer.server_error(502),
    revoked={"BLUESKY_APP_PASSWORD": "zzzz-yyyy-xxxx-wwww"},
    refused=("Bluesky refused the handle or app password (HTTP 401: AuthenticationRequired: Invalid identifier or "
             "password): create a new app password in Settings > Privacy and security > App passwords, then put it "
             "in the variable channels.yaml names for app_password (and check that handle is the account's handle)"),
    # One refusal is enough: asking again for the other language would only spend the sign-in limit.
    asked_when_refused=Counter({BLUESKY_SESSION: 1}),
    refuse=lambda fake: fake.script(BLUESKY_SESSION, bluesky_api.Answer.unauthorized()),
    rate_limited=bluesky_api.Answer.rate_limited,
    deduplicates=True,
    found_again_note="already posted: found under its record key",
    # The post is written under a record key fixed by its delivery: the retry finds it there.
    names_the_first_post=lambda fake, first, delivery: _record_key(delivery) == first.params["rkey"],
)

TELEGRAM = Provider(
    name="telegram", label="Telegram",
    start=lambda: telegram_api.FakeTelegram(TELEGRAM_TOKEN, [telegram_api.Chat(TELEGRAM_CHANNEL_ID,
                                                                                username="example_status")]),
    settings=lambda url: {"type": "telegram", "token": "${TELEGRAM_BOT_TOKEN}", "chat_id": "@example_status",
                          "api_base": url},
    env={},
    dotenv={"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN},
    # The token's secret half too: the bot id before the colon is public.
    secrets=(TELEGRAM_TOKEN, TELEGRAM_TOKEN.partition(":")[2]),
    post_route="sendMessage",
    posts=lambda fake: fake.sent(),
    stored=lambda fake: len(fake.messages),
    post_key=lambda request: request.json["text"],
    server_error=telegram_api.bad_gateway(),
    revoked={"TELEGRAM_BOT_TOKEN": "7351824690:AAold-revoked-Qw3Er6Ty9Ui2"},
    refused=("Telegram refused the bot token (401 Unauthorized): get a new one from @BotFather (/token) and "
             "update setting 'token' of channel 'telegram'"),
    asked_when_refused=Counter({"sendMessage": 2}),
    refuse=lambda fake: fake.script("sendMessage", telegram_api.error(401, "Unauthorized"),
                                    telegram_api.error(401, "Unauthorized")),
    retry_for="3s",
)
