"""Wrong logins to IMAP, POP3, SMTP and FTP servers from a chosen source address, for the
record-*.sh scripts. Usage:

    login-client.py PROTOCOL SOURCE SERVER PORT USER PASSWORD TRIES

PROTOCOL is imap, pop3, smtp (AUTH PLAIN) or ftp (USER, PASS); one connection, TRIES
wrong logins in it, then QUIT/LOGOUT. Prints what the server answered to each.
"""
import ftplib
import imaplib
import poplib
import smtplib
import socket
import sys


def connect(source, server, port):
    return socket.create_connection((server, port), timeout=30, source_address=(source, 0))


class IMAP(imaplib.IMAP4):
    def __init__(self, source, server, port):
        self._source = source
        super().__init__(server, port)

    def _create_socket(self, timeout):
        return connect(self._source, self.host, self.port)


class POP3(poplib.POP3):
    def __init__(self, source, server, port):
        self._source = source
        super().__init__(server, port)

    def _create_socket(self, timeout):
        return connect(self._source, self.host, self.port)


def imap(source, server, port, user, password, tries):
    client = IMAP(source, server, port)
    for _ in range(tries):
        try:
            client.login(user, password)
            print("imap: logged in?!")
        except imaplib.IMAP4.error as e:
            print("imap:", e)
    client.logout()


def pop3(source, server, port, user, password, tries):
    client = POP3(source, server, port)
    for _ in range(tries):
        try:
            client.user(user)
            client.pass_(password)
            print("pop3: logged in?!")
        except poplib.error_proto as e:
            print("pop3:", e)
    client.quit()


def smtp(source, server, port, user, password, tries):
    client = smtplib.SMTP(server, port, source_address=(source, 0), timeout=30)
    client.ehlo("client.example")
    # One mechanism (smtplib's login() would try each the server offers).
    client.user, client.password = user, password
    for _ in range(tries):
        try:
            print("smtp:", client.auth("PLAIN", client.auth_plain))
        except smtplib.SMTPException as e:
            print("smtp:", e)
    client.quit()


def ftp(source, server, port, user, password, tries):
    client = ftplib.FTP(source_address=(source, 0), timeout=30)
    client.connect(server, port)
    for _ in range(tries):
        try:
            client.login(user, password)
            print("ftp: logged in?!")
        except ftplib.error_perm as e:
            print("ftp:", e)
        except (EOFError, ConnectionError) as e:
            print("ftp: closed:", e)
            return
    try:
        client.quit()
    except (EOFError, ConnectionError, ftplib.Error) as e:
        print("ftp: quit:", e)


if __name__ == "__main__":
    proto, source, server, port, user, password, tries = sys.argv[1:]
    {"imap": imap, "pop3": pop3, "smtp": smtp, "ftp": ftp}[proto](
        source, server, int(port), user, password, int(tries)
    )
