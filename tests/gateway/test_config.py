"""Configuration layers, their precedence, and refusal of mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, render_config


def test_defaults_are_the_embedded_setup() -> None:
    loaded = load_config(environ={})
    assert loaded.config.server.listen == "127.0.0.1:50051"
    assert loaded.config.store.url == ""
    assert loaded.config.data_dir == Path("mtsg-data")
    assert set(loaded.sources.values()) == {"default"}


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "mtsg.toml"
    path.write_text(
        '[server]\nlisten = "0.0.0.0:1111"\n[limits]\nmax_installed_apps = 500\n[logging]\nlevel = "debug"\n'
    )
    loaded = load_config(
        path,
        environ={"MTSG_SERVER_LISTEN": "0.0.0.0:2222", "MTSG_LIMITS_MAX_INSTALLED_APPS": "700"},
        overrides={("server", "listen"): ("127.0.0.1:3333", "flag --listen")},
    )
    assert loaded.config.server.listen == "127.0.0.1:3333"
    assert loaded.config.limits.max_installed_apps == 700
    assert loaded.config.logging.level == "debug"
    assert loaded.sources[("server", "listen")] == "flag --listen"
    assert loaded.sources[("limits", "max_installed_apps")] == "env MTSG_LIMITS_MAX_INSTALLED_APPS"
    assert loaded.sources[("logging", "level")] == f"file {path}"
    shown = render_config(loaded)
    assert 'listen = "127.0.0.1:3333"  # flag --listen' in shown
    assert "max_installed_apps = 700  # env MTSG_LIMITS_MAX_INSTALLED_APPS" in shown


def test_config_show_never_prints_the_database_password() -> None:
    loaded = load_config(environ={"MTSG_STORE_URL": "postgresql://mtsg:s3cret-pw@db:5432/mtsg"})
    assert loaded.config.store.url == "postgresql://mtsg:s3cret-pw@db:5432/mtsg"
    shown = render_config(loaded)
    assert 'url = "postgresql://mtsg:***@db:5432/mtsg"  # env MTSG_STORE_URL' in shown
    assert "s3cret-pw" not in shown
    in_query = "postgresql://mtsg@db:5432/mtsg?sslmode=require&password=s3cret-pw&application_name=gw"
    shown = render_config(load_config(environ={"MTSG_STORE_URL": in_query}))
    assert 'url = "postgresql://mtsg@db:5432/mtsg?sslmode=require&password=***&application_name=gw"' in shown
    assert "s3cret-pw" not in shown


def test_config_show_never_prints_a_feeds_token_or_credentials() -> None:
    feeds = "https://reader:pw-1@feeds.example/kisa.bundle?token=tok-2, https://feeds.example/other.bundle"
    loaded = load_config(environ={"MTSG_BLOCKLIST_FEED_URLS": feeds})
    shown = render_config(loaded)
    assert loaded.config.feed_urls[0] == "https://reader:pw-1@feeds.example/kisa.bundle?token=tok-2"
    assert 'feed_urls = "https://feeds.example/kisa.bundle https://feeds.example/other.bundle"' in shown
    assert "pw-1" not in shown and "tok-2" not in shown


@pytest.mark.parametrize(
    ("text", "environ", "problem"),
    [
        ("[server]\nlisen = 'x:1'\n", {}, "unknown key server.lisen"),
        ("[sever]\n", {}, r"unknown section \[sever\]"),
        ("[limits]\nmax_installed_apps = 'many'\n", {}, "expected int, got str"),
        ("[limits]\nmax_installed_apps = 0\n", {}, "must be positive"),
        ("", {"MTSG_LIMITS_MAX_INSTALLED_APPS": "lots"}, "env MTSG_LIMITS_MAX_INSTALLED_APPS.*expected int"),
        ("[server]\nlisten = 'nohostport'\n", {}, "expected HOST:PORT"),
        ("[logging]\nlevel = 'loud'\n", {}, "logging.level"),
        ("[store]\nurl = 'mysql://x'\n", {}, "expected sqlite:///PATH or postgresql://"),
        ("[store]\npool_size = 0\n", {}, "store.pool_size: must be positive"),
        ("[server\n", {}, "not valid TOML"),
        ("[commands]\nendpoint_urls = 'https://core/x'\n", {}, "no signing key"),
        (
            "[commands]\nendpoint_urls = 'ftp://core/x'\nhmac_secret_file = 'k'\n",
            {},
            "commands.endpoint_urls: expected",
        ),
        ("[commands]\nlease_seconds = 5.0\nrequest_timeout_seconds = 5.0\n", {}, "must exceed"),
        ("[commands]\nmax_attempts = 0\n", {}, "commands.max_attempts: must be positive"),
        ("", {"MTSG_LOGIN_APP_CACHE_ENTRIES": "-1"}, "login.app_cache_entries: must not be negative"),
        ("[blocklist]\nfeed_interval_seconds = nan\n", {}, "blocklist.feed_interval_seconds .*finite number"),
        ("[server]\nshutdown_grace_seconds = inf\n", {}, "server.shutdown_grace_seconds .*finite number"),
        ("", {"MTSG_LOGIN_STORE_TIMEOUT_SECONDS": "nan"}, "login.store_timeout_seconds .*finite number"),
        ("", {"MTSG_COMMANDS_REQUEST_TIMEOUT_SECONDS": "1e12"}, "finite number up to 1,000,000,000"),
        ("[server]\nmax_message_bytes = 100_000_000_000\n", {}, "gRPC takes at most 2,147,483,647"),
        ("", {"MTSG_SERVER_FLOW_CONTROL_WINDOW_BYTES": "1000"}, "flow_control_window_bytes: HTTP/2 takes 65,535"),
        ("[server]\nflow_control_window_bytes = 3_000_000_000\n", {}, "to 2,147,483,647, got 3,000,000,000"),
    ],
)
def test_mistakes_are_refused_with_the_key_named(
    tmp_path: Path, text: str, environ: dict[str, str], problem: str
) -> None:
    path = tmp_path / "mtsg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_config(path, environ=environ)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_a_mistyped_environment_variable_is_reported_not_silently_ignored() -> None:
    """A mistyped key in the file is refused; a mistyped variable used to set nothing without a word."""
    loaded = load_config(
        environ={
            "MTSG_LOGIN_FAILMODE": "freeze",  # meant MTSG_LOGIN_FAIL_MODE
            "MTSG_SERVER_LISTN": "0.0.0.0:50051",
            "MTSG_SERVER_LISTEN": "127.0.0.1:7000",
            "MTSG_TOKEN": "a client's token, not a setting",
            "MTSG_STORE_SERVICE_HOST": "10.0.0.7",  # Kubernetes' link to a Service called mtsg-store
            "MTSG_STORE_PORT_5432_TCP_ADDR": "10.0.0.7",
        }
    )
    assert loaded.ignored_variables == (
        "MTSG_LOGIN_FAILMODE sets nothing (did you mean MTSG_LOGIN_FAIL_MODE?)",
        "MTSG_SERVER_LISTN sets nothing (did you mean MTSG_SERVER_LISTEN?)",
    )
    assert loaded.config.login.fail_mode != "freeze" and loaded.config.server.listen == "127.0.0.1:7000"
    shown = render_config(loaded)
    assert shown.endswith(
        "# ignored: MTSG_LOGIN_FAILMODE sets nothing (did you mean MTSG_LOGIN_FAIL_MODE?)\n"
        "# ignored: MTSG_SERVER_LISTN sets nothing (did you mean MTSG_SERVER_LISTEN?)\n"
    )
    assert load_config(environ={"MTSG_SERVER_LISTEN": "127.0.0.1:7000"}).ignored_variables == ()
