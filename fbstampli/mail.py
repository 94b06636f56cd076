"""Sending one e-mail through the configured SMTP relay, and nothing else.

smtplib's and ssl's failures are translated here, at the edge, into the
program's errors, each one line saying what to do: a refused login is
`AuthRequiredError`, a relay that cannot be reached or drops the line
`RemoteUnavailableError` (cron tries again), a certificate or recipient the
relay will not take `ConfigError`. Messages name the host and user, never
the password.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from fbstampli.errors import AuthRequiredError, ConfigError, RemoteUnavailableError
from fbstampli.store.digests import SmtpLogin

SECURITY = ("starttls", "tls", "none")
FIX = "fix it with `fbstampli auth smtp`"


def _context(login: SmtpLogin) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=login.ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"the CA file {login.ca_file} for the SMTP relay cannot be read ({error}); {FIX}"
        ) from None


def send_message(login: SmtpLogin, message: EmailMessage, *, timeout: float) -> None:
    """Hand `message` to the relay: implicit TLS, or STARTTLS before anything is said, or (to a
    relay on this machine only; `digest setup` checks) plain SMTP; then the login, if any."""
    where = f"{login.host}:{login.port}"
    context = _context(login)
    try:
        if login.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                login.host, login.port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(login.host, login.port, timeout=timeout)
        with client:
            client.ehlo()
            if login.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if login.username:
                client.login(login.username, login.password)
            client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise AuthRequiredError(
            f"the SMTP relay {where} refused the login of {login.username}; {FIX}"
        ) from None
    except smtplib.SMTPNotSupportedError as error:
        what = "STARTTLS" if login.security == "starttls" else "a login"
        raise ConfigError(
            f"the SMTP relay {where} does not offer {what} ({error}); {FIX}"
        ) from None
    except smtplib.SMTPRecipientsRefused as error:
        refused = ", ".join(sorted(error.recipients))
        raise ConfigError(
            f"the SMTP relay {where} refused the recipients {refused}; fix digest.to in config.toml"
        ) from None
    except smtplib.SMTPSenderRefused:
        raise ConfigError(
            f"the SMTP relay {where} refused the sender; fix digest.sender in config.toml"
        ) from None
    except ssl.SSLCertVerificationError as error:
        raise ConfigError(
            f"the SMTP relay {where} showed a certificate this machine does not trust "
            f"({error.verify_message}); give its CA with `fbstampli auth smtp --ca-file`"
        ) from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise RemoteUnavailableError(
            f"the SMTP relay {where} could not take the digest ({reason or type(error).__name__})"
            "; the next run tries again (`fbstampli digest --send` now)"
        ) from None
