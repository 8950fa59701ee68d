"""The Slack Web API client the product uses: ``slack_sdk.WebClient`` at the configured base URL, retrying
rate-limited calls (HTTP 429, after ``Retry-After``) and dropped connections."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from config.settings import Settings
from tools.errors import FinOpsError

RATE_LIMIT_RETRIES = 3


class SlackNotConfigured(FinOpsError):
    """A Slack feature was asked for without the variables it needs."""


def base_url(settings: Settings) -> str:
    """FINOPS_SLACK_API_URL with the trailing slash WebClient needs (``https://slack.com/api/``)."""
    url = settings.slack_api_url
    return url if url.endswith("/") else url + "/"


def make_client(settings: Settings, *, token: str | None = None) -> WebClient:
    """A WebClient with the bot token of ``settings`` (or ``token``). Raises SlackNotConfigured naming
    SLACK_BOT_TOKEN when there is none."""
    if token is None:
        if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
            raise SlackNotConfigured(
                "SLACK_BOT_TOKEN is not set: set it to the app's bot token (xoxb-...), "
                "or run without Slack (every command works from the CLI)"
            )
        token = settings.slack_bot_token.get_secret_value()
    return WebClient(
        token=token,
        base_url=base_url(settings),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )
