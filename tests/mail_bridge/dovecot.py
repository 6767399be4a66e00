"""A throwaway Dovecot (IMAP with IDLE + LMTP) on 127.0.0.1, run by the tests and stopped by its PID.

The recipe of ../shared/recipes/real-servers.md: no /etc/dovecot involved, everything under one /tmp
directory, the whole server run as one unprivileged account (its login processes refuse root).
`users` are `address: password` pairs; `deliver` injects mail over LMTP (the real delivery path,
which also wakes IDLE); `restart` stops and starts the same server on the same ports and Maildirs.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.realservers import free_port, private_dir, stop

START_TIMEOUT = 10.0


def _account() -> tuple[str, int, int, str]:
    name = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name


@dataclass
class Dovecot:
    """One running Dovecot."""

    directory: Path
    imap_port: int
    lmtp_port: int
    users: dict[str, str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def config(self) -> str:
        user, uid, gid, group = _account()
        return f"""
base_dir = {self.directory}/run
state_dir = {self.directory}/state
log_path = {self.directory}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 0
first_valid_gid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.directory}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.directory}/users
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Spam {{
    auto = subscribe
    special_use = \\Junk
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
recipient_delimiter = +
imap_idle_notify_interval = 1 secs
# Failed logins answer at once (default 2 s): the back-off tests count failures.
auth_failure_delay = 0
"""

    def write_files(self) -> None:
        _, uid, gid, _ = _account()
        for sub in ("run", "state", "mail"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{self.directory}/mail/{address.split('@')[0]}"
            for address, password in self.users.items()
        ]
        (self.directory / "users").write_text("\n".join(lines) + "\n")
        (self.directory / "dovecot.conf").write_text(self.config())
        if os.getuid() == 0:
            for root, dirs, files in os.walk(self.directory):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), uid, gid)
            os.chown(self.directory, uid, gid)

    def start(self) -> None:
        self.write_files()
        _, uid, gid, _ = _account()
        prefix = (
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] if os.getuid() == 0 else []
        )
        out = open(self.directory / "dovecot.out", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*prefix, "dovecot", "-F", "-c", str(self.directory / "dovecot.conf")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        out.close()
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not answer in {START_TIMEOUT} s: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGTERM, grace=5.0)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.directory / "dovecot.log", self.directory / "dovecot.out")
                 if p.exists()]
        return "\n".join(parts)[-4000:]

    def deliver(self, to: str, raw: bytes) -> None:
        """Deliver one message over LMTP (``user+Spam@…`` lands in Spam)."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail("sender@client.example", [to], raw)

    def maildir(self, address: str) -> Path:
        return self.directory / "mail" / address.split("@")[0] / "Maildir"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_dovecot(users: dict[str, str]) -> Dovecot:
    server = Dovecot(private_dir("dovecot-"), free_port(), free_port(), dict(users))
    server.start()
    return server
