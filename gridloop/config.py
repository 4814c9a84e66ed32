"""All configuration in one place, from the environment (twelve-factor).

`KAFKA_BOOTSTRAP_SERVERS` and `MONGODB_URI` point every service at external servers; when
they are unset, `gridloop up` starts the embedded ones and sets them for its children.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridloop.topology import check_namespace

DEMO_CITY_PACK = Path(__file__).parent / "citypack" / "demo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDLOOP_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27017", validation_alias=AliasChoices("MONGODB_URI")
    )
    mongodb_database: str = "gridloop"
    city_pack: Path = DEMO_CITY_PACK
    data_dir: Path = Path(".gridloop")
    host: str = "127.0.0.1"
    intake_port: int = 8000
    dispatch_port: int = 8001
    notify_port: int = 8002
    sla_port: int = 8003
    projections_port: int = 8004
    evaluation_port: int = 8005
    grid_port: int = 8006  # the grid's people (services/grid): staff and patrols
    desk_port: int = 8009  # the demo department desk that receives webhooks
    console_port: int = 8010  # the workbench (工作台) people sign in to
    # The front door (system/frontdoor): one origin for every API (/v1), Open311, the
    # workbench and the big screen; and the address it connects to the services from.
    door_port: int = 8080
    door_source: str = ""
    # Where the console sends actions (default: the services on this host), and
    # whether its cookies are sent only over HTTPS (set it behind a TLS proxy).
    dispatch_url: str = ""
    intake_url: str = ""
    secure_cookies: bool = False
    # Seconds between deadline scans of the SLA engine: a breach is sent at most this late
    # plus the scan itself (a scan of nothing due costs microseconds).
    sla_tick_seconds: float = 0.25
    # Webhook delivery (services/notify): seconds before each attempt, comma-separated (the
    # Standard Webhooks schedule; a delivery is dead-lettered after the last), spread by
    # ±jitter; a timeout per attempt; attempts in flight per department; the circuit breaker.
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    webhook_jitter: float = 0.2
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 4
    webhook_circuit_threshold: int = 5
    webhook_circuit_cooldown_seconds: float = 30.0
    webhook_poll_seconds: float = 0.5
    # Signed links to a case's photos in webhooks (gridloop/medialinks.py): the key (empty:
    # one kept in the database), how long a link stands, and where intake's `/media` is
    # reached from outside (empty: this host's intake port).
    media_link_key: str = ""
    media_link_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    media_link_base_url: str = ""
    # Where a reporter's messages link to (their case to follow and rate, at the front door's
    # `/v1/cases/{id}/public`): the public origin (empty: this host's front door port).
    public_base_url: str = ""
    # Consumer group session timeout; short values make failover fast in tests.
    kafka_session_timeout_ms: int = 10_000
    # The HTTP door of every service (gridloop/http.py): callers without a staff credential
    # may make this many requests per client address (a `limits` string: "60/minute",
    # "5/second;100/hour"); staff are not limited by it. X-Forwarded-For is believed only
    # from these proxies (comma-separated addresses or networks; none by default).
    public_rate_limit: str = "60/minute"
    trusted_proxies: str = ""
    # Largest request body in bytes (media uploads have their own, larger limit).
    max_body_bytes: int = 1_048_576
    # The services' log level (`gridloop run`); the libraries that log what goes over the
    # wire stay at INFO or above even at DEBUG (`system.cli.WIRE_LOGGERS`).
    log_level: str = "INFO"
    # Replicas of each topic the services create, and how many must have a write before
    # acks=all succeeds: 1/1 on one broker, 3/2 on a three-broker cluster (one may fail).
    kafka_replication_factor: int = Field(
        1, ge=1, validation_alias=AliasChoices("KAFKA_REPLICATION_FACTOR")
    )
    kafka_min_insync_replicas: int = Field(
        1, ge=1, validation_alias=AliasChoices("KAFKA_MIN_INSYNC_REPLICAS")
    )
    # A prefix of every topic and consumer group, so that two systems share one broker:
    # `ci7` reads and writes `ci7.reports`, `ci7.reports.dlq`, … as groups `ci7.dispatch`, …
    # (gridloop/topology.py). Empty (the default): the plain names.
    namespace: str = ""
    # The master keys that wrap reporters' contact keys (docs/personal-data.md): base64,
    # the first current, any others previous (a rotation under way). Or a file of them,
    # one a line; by default `<data dir>.contact-keys` beside the data directory (never in
    # it, so a copy of the database's files is not a copy of the key), made when missing.
    contact_keys: str = Field("", repr=False)
    contact_keys_file: Path | None = None

    @field_validator("namespace")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        return check_namespace(value)

    @property
    def public_base(self) -> str:
        """The public origin reporters' links start with."""
        return (self.public_base_url or f"http://{self.host}:{self.door_port}").rstrip("/")

    @property
    def media_base(self) -> str:
        """Where a department's signed link reaches intake (`{base}/media/{id}`)."""
        return self.media_link_base_url or f"http://{self.host}:{self.intake_port}"
