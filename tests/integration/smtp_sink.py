"""A real SMTP server for groupwarden's notification tests (aiosmtpd).

Usage: smtp_sink.py OUT_DIR [PORT] [USER PASSWORD]

With SMTP_SINK_CERT and SMTP_SINK_KEY set (PEM files), it offers STARTTLS
with that certificate.

Listens on 127.0.0.1 (PORT, or a free one), prints "READY <port>" once it
accepts connections, and writes every message it receives to
OUT_DIR/NNN.json as {"mail_from", "rcpt_tos", "login", "data"}. With USER
and PASSWORD it offers AUTH PLAIN/LOGIN (without TLS: loopback only) and
refuses other credentials. Runs until killed.

With SMTP_SINK_REPLY set (e.g. "552 5.3.4 Message too big"), it answers
DATA with that reply instead of 250, for the first SMTP_SINK_REPLY_TIMES
messages (default: all); the refused messages are written too, with the
reply as "reply".
"""

import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0
        self.reply = os.environ.get("SMTP_SINK_REPLY")
        times = os.environ.get("SMTP_SINK_REPLY_TIMES")
        self.reply_times = int(times) if times else None

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "data": envelope.content.decode("utf8", errors="replace"),
            "reply": "250 OK",
        }
        if self.reply and (self.reply_times is None or self.count <= self.reply_times):
            record["reply"] = self.reply
        path = os.path.join(self.out_dir, "%03d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return record["reply"]


def main():
    out_dir = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "0" else free_port()
    user, password = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else (None, None)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    options = {"auth_require_tls": False}
    if os.environ.get("SMTP_SINK_CERT"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.environ["SMTP_SINK_CERT"], os.environ["SMTP_SINK_KEY"])
        options.update(tls_context=context, require_starttls=True)
    if user is not None:
        options.update(authenticator=authenticator, auth_required=True)
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port, server_kwargs=options)
    controller.start()
    print("READY %d" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
