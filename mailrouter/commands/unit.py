"""`mailrouter unit` and `mailrouter init`: what a service install needs besides the wheel.

`unit` reads config.toml as plain TOML (no secret is resolved: it runs before they exist) and
prints a systemd drop-in with one LoadCredential= per secret the config names: every
mailbox, SMTP, each reply source with a login of its own, each webhook URL. The credential
files live in credentials/ beside the config, which is also where `check` looks for them
from a root shell (config/credentials.py), so both read the same files.
"""
from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailrouter.config.credentials import SHELL_CREDENTIALS
from mailrouter.config.paths import SERVICE_STATE_DIR
from mailrouter.resources import packaged

SECRET_KINDS = ("password", "oauth2_client_secret", "oauth2_refresh_token")
_IN_CREDENTIALS = re.compile(r"^\$\{?CREDENTIALS_DIRECTORY\}?/(?P<name>[^/]+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# What `unit` and `init` say, per language (issue 15 item 6); keys, paths and systemd
# directives stay as written, since they are what the sysadmin types.
LABELS = {
    "en": {"fix_file": 'write {file_key} = "$CREDENTIALS_DIRECTORY/{name}"',
           "fix_env": 'the unit passes no environment; write {file_key} = "$CREDENTIALS_DIRECTORY/{name}" instead',
           "sandbox": "{key}: the service may write only {state}, not {path}; leave {key} out to use the "
                      "state directory",
           "head": "# mailrouter.service drop-in for {config}, written by `mailrouter unit`.\n"
                   "#   mailrouter unit > /etc/systemd/system/mailrouter.service.d/local.conf\n"
                   "# Each secret goes in {store}/<name> (root-owned, mode 0600): systemd copies it for the\n"
                   "# service alone, and `check` in a root shell reads the same file.",
           "reload": "# check first: a reload with a broken config fails, and `systemctl reload` says why",
           "note": "mailrouter unit: {note}", "wrote": "wrote {path}",
           "next": "next: edit {config}, put each password in {credentials}/<name> (mode 0600), then "
                   "`mailrouter -c {config} unit` lists the names"},
    "zh": {"fix_file": '请写 {file_key} = "$CREDENTIALS_DIRECTORY/{name}"',
           "fix_env": '服务单元不传环境变量；请改写 {file_key} = "$CREDENTIALS_DIRECTORY/{name}"',
           "sandbox": "{key}：服务只能写入 {state}，不能写 {path}；去掉 {key} 即使用状态目录",
           "head": "# {config} 的 mailrouter.service drop-in，由 `mailrouter unit` 生成。\n"
                   "#   mailrouter unit > /etc/systemd/system/mailrouter.service.d/local.conf\n"
                   "# 每个机密放在 {store}/<名字>（属主 root，权限 0600）：systemd 只为本服务复制一份，\n"
                   "# root shell 中运行的 `check` 读取的也是同一个文件。",
           "reload": "# 先运行 check：配置有误时重载失败，`systemctl reload` 会显示原因",
           "note": "mailrouter unit：{note}", "wrote": "已写入 {path}",
           "next": "下一步：编辑 {config}，把每个密码放入 {credentials}/<名字>（权限 0600），然后运行 "
                   "`mailrouter -c {config} unit` 列出需要的名字"},
}


def labels(language: str) -> dict[str, str]:
    return LABELS["zh" if language == "zh" else "en"]


@dataclass(frozen=True)
class Secret:
    key: str  # the config key that names it, e.g. "mailbox[0].password_file"
    credential: str  # the LoadCredential= name, e.g. "sales-password"
    fix: str | None = None  # "file" or "env" when the key does not read the credential yet
    file_key: str = ""  # the key to write instead, e.g. "password_file"

    @property
    def advice(self) -> str | None:
        return advice_text(self)


def advice_text(secret: Secret, language: str = "en") -> str | None:
    """What to write instead, when the key does not read the credential yet."""
    if secret.fix is None:
        return None
    return labels(language)[f"fix_{secret.fix}"].format(file_key=secret.file_key, name=secret.credential)


def config_secrets(data: dict[str, Any]) -> list[Secret]:
    """Every secret the config names, in file order."""
    found: list[Secret] = []
    for prefix, owner, table in _secret_tables(data):
        for kind in SECRET_KINDS:
            found += _secret(table, prefix, kind, f"{owner}-{kind.replace('_', '-')}")
    for i, hook in enumerate(_tables(data.get("sla", {}).get("webhook", []))):
        found += _secret(hook, f"sla.webhook[{i}].", "url", f"webhook-{hook.get('name', i)}-url")
    return found


def _tables(value: Any) -> list[dict]:
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []


def _secret_tables(data: dict[str, Any]) -> list[tuple[str, str, dict]]:
    tables = [(f"mailbox[{i}].", str(m.get("name", f"mailbox{i}")), m)
              for i, m in enumerate(_tables(data.get("mailbox", [])))]
    if isinstance(data.get("smtp"), dict):
        tables.append(("smtp.", "smtp", data["smtp"]))
    for i, source in enumerate(_tables(data.get("reply_source", []))):
        if source.get("kind") != "shared_sent":  # logs in as its shared mailbox
            owner = source.get("rep") or source.get("name") or source.get("kind") or i
            tables.append((f"reply_source[{i}].", f"reply-{owner}", source))
    return tables


def _secret(table: dict, prefix: str, kind: str, suggested: str) -> list[Secret]:
    file_key, env_key = f"{kind}_file", f"{kind}_env"
    name = _UNSAFE.sub("-", suggested)
    if isinstance(table.get(file_key), str):
        match = _IN_CREDENTIALS.match(table[file_key])
        if match:
            return [Secret(prefix + file_key, match["name"], None)]
        return [Secret(prefix + file_key, name, "file", file_key)]
    if env_key in table:
        return [Secret(prefix + env_key, name, "env", file_key)]
    return []


def sandbox_problems(data: dict[str, Any], config_path: Path, language: str = "en") -> list[str]:
    """State the sandbox could not write: ProtectSystem=strict leaves the service only its
    StateDirectory, so a database or spool named elsewhere fails at the first write."""
    daemon = data.get("daemon", {}) if isinstance(data.get("daemon"), dict) else {}
    found = []
    database = daemon.get("database", "")
    if isinstance(database, str) and database.startswith("sqlite:///"):
        found.append(("daemon.database", database[len("sqlite:///"):]))
    if isinstance(daemon.get("spool_dir"), str):
        found.append(("daemon.spool_dir", daemon["spool_dir"]))
    problems = []
    for key, value in found:
        path = Path(value) if Path(value).is_absolute() else config_path.resolve().parent / value
        if not path.is_relative_to(SERVICE_STATE_DIR):
            problems.append(labels(language)["sandbox"].format(key=key, state=SERVICE_STATE_DIR, path=path))
    return problems


def unit_notes(data: dict[str, Any], config_path: Path, language: str = "en") -> list[str]:
    """What to change in config.toml before the service can run it as it is."""
    colon = "：" if language == "zh" else ": "
    return sandbox_problems(data, config_path, language) + [
        f"{s.key}{colon}{advice_text(s, language)}" for s in config_secrets(data) if s.fix]


def config_language(data: dict[str, Any]) -> str:
    """daemon.language read from plain TOML: `unit` runs before the config need be valid."""
    daemon = data.get("daemon")
    return "zh" if isinstance(daemon, dict) and daemon.get("language") == "zh" else "en"


def dropin(data: dict[str, Any], config_path: Path, executable: str, language: str = "en") -> str:
    """The drop-in for /etc/systemd/system/mailrouter.service.d/ for this config."""
    t = labels(language)
    config_path = config_path.resolve()
    store = config_path.parent / SHELL_CREDENTIALS
    command = f"{executable} -c {config_path}"
    lines = [
        t["head"].format(config=config_path, store=store),
        "[Service]",
        "ExecStart=",
        f"ExecStart={command} run",
        t["reload"],
        "ExecReload=",
        f"ExecReload={command} check",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ]
    lines += [f"# {note}" for note in unit_notes(data, config_path, language)]
    seen: set[str] = set()
    for secret in config_secrets(data):
        if secret.credential not in seen:
            seen.add(secret.credential)
            lines.append(f"LoadCredential={secret.credential}:{store / secret.credential}")
    return "\n".join(lines) + "\n"


def installed_executable() -> str:
    """The `mailrouter` script of this installation (venv or pipx), for ExecStart=."""
    beside = Path(sys.executable).parent / "mailrouter"  # not resolved: a venv's python is a symlink
    if beside.exists():
        return str(beside)
    return shutil.which("mailrouter") or "/opt/mailrouter/bin/mailrouter"


_EXAMPLE_ENV = re.compile(r'(?m)^password_env = "MAILROUTER_(?P<owner>[A-Z0-9_]+)_PASSWORD"')


def service_config_text(example: str) -> str:
    """The example config with its passwords read from credential files instead of the
    environment (a unit passes none): the form `unit` and `check` expect."""
    return _EXAMPLE_ENV.sub(lambda m: f'password_file = "$CREDENTIALS_DIRECTORY/'
                            f'{m["owner"].lower()}-password"', example)


def init_config_dir(target: Path) -> list[Path]:
    """Write the annotated config.toml and the default rules into `target`, never over a file
    that is already there; make the credentials folder (0700). Returns what was written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    config = target / "config.toml"
    if not config.exists():
        config.write_text(service_config_text(packaged("config.toml").read_text(encoding="utf-8")),
                          encoding="utf-8")
        written.append(config)
    for source in sorted(packaged("rules").glob("*.toml")):
        dest = target / "rules" / source.name
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        written.append(dest)
    credentials = target / SHELL_CREDENTIALS
    if not credentials.exists():
        credentials.mkdir(mode=0o700)
        written.append(credentials)
    return written
