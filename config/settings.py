"""Process settings from environment variables (FINOPS_*), overridable by CLI options."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".finops")
DEFAULT_CONFIG = Path("finops.yaml")
EXAMPLE_CONFIG = Path(__file__).with_name("finops.example.yaml")


class Settings(BaseSettings):
    """Where the product keeps its state and finds its config.

    Every field is read from ``FINOPS_<NAME>``; CLI options (``--db``, ``--config``) take precedence.
    The model endpoint is configured the way every OpenAI client is: ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (any OpenAI-compatible endpoint), read without the ``FINOPS_`` prefix.
    """

    model_config = SettingsConfigDict(env_prefix="FINOPS_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Folder for the default SQLite database and lake")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the app database")
    config: Path | None = Field(None, description="Path of finops.yaml")
    lake_dir: Path | None = Field(None, description="Folder of the Parquet cost lake")
    as_of: date | None = Field(None, description="Today's date for relative periods (default: the real date)")
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "FINOPS_OPENAI_API_KEY"),
        description="API key of the model endpoint; without it `finops ask` answers offline",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "OPENAI_API_BASE", "FINOPS_OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible chat-completions endpoint (default: OpenAI's)",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model of the question graph (FINOPS_LLM_MODEL)")
    llm_provider: str = Field(
        "openai",
        description="Provider the model is billed by, for pricing the assistant's own usage "
        "(OpenTelemetry gen_ai.provider.name: openai, azure.ai.openai, aws.bedrock, ...)",
    )
    llm_timeout: float = Field(60.0, gt=0, description="Seconds to wait for one model response")
    llm_max_retries: int = Field(2, ge=0, description="Retries of a failed model request")
    slack_bot_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_BOT_TOKEN", "FINOPS_SLACK_BOT_TOKEN"),
        description="Bot token (xoxb-...) of the Slack app; without it everything runs from the CLI",
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "FINOPS_SLACK_SIGNING_SECRET"),
        description="Signing secret that Slack's requests are checked against (HTTP mode)",
    )
    slack_app_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_APP_TOKEN", "FINOPS_SLACK_APP_TOKEN"),
        description="App-level token (xapp-...): when set, `finops serve` connects in Socket Mode",
    )
    dashboard_token: SecretStr | None = Field(
        None,
        description="Token the dashboard requires: Authorization: Bearer, or ?token= once (then an HttpOnly "
        "cookie) (FINOPS_DASHBOARD_TOKEN)",
    )
    dashboard_proxy_header: str | None = Field(
        None,
        description="Header a trusted authenticating reverse proxy sets on every request, e.g. X-Forwarded-User "
        "(FINOPS_DASHBOARD_PROXY_HEADER)",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        description="Base URL of the Slack Web API (FINOPS_SLACK_API_URL), for proxies and tests",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'finops.db').as_posix()}"

    def resolved_lake_dir(self) -> Path:
        return self.lake_dir if self.lake_dir is not None else self.home / "lake"

    def resolved_config_path(self) -> Path:
        """The config file in use: --config / FINOPS_CONFIG, else ./finops.yaml, else the shipped example."""
        if self.config is not None:
            return self.config
        if DEFAULT_CONFIG.exists():
            return DEFAULT_CONFIG
        return EXAMPLE_CONFIG
