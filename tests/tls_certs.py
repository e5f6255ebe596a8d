"""Test-only TLS certificates, made with the `openssl` command.

`make_certs(directory)` writes, into `directory`:

- a test CA (`ca.pem`, `ca.key`);
- `server.pem`/`server.key`: a certificate for DNS:localhost, IP:127.0.0.1
  and IP:::1, signed by the test CA;
- `wrong_host.pem`/`wrong_host.key`: signed by the test CA, but for
  `wrong.invalid` only (hostname checks fail for localhost);
- `untrusted.pem`/`untrusted.key`: self-signed for localhost and
  127.0.0.1, trusted by nobody;
- `client.pem`/`client.key`: a client certificate signed by the test CA.

The `tls_certs` fixture of tests/conftest.py (session scope) makes them
once per test run in a temporary directory and returns a `Certs` object with the paths and
helpers building client and server contexts. No `cryptography` package is
needed; EC keys keep generation fast. Everything here is for tests only.
"""

import os
import ssl
import subprocess

__all__ = ('Certs', 'make_certs')

_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
_DAYS = '3650'


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def _leaf(directory, name, subject, san, usage):
    # A key and a certificate request, signed by the test CA with the
    # extensions Python 3.13's strict X.509 checks want.
    _openssl('req', '-new', *_KEY, '-keyout', f'{name}.key',
             '-out', f'{name}.csr', '-subj', subject, cwd=directory)
    ext = [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        f'extendedKeyUsage={usage}',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid,issuer',
    ]
    if san:
        ext.append(f'subjectAltName={san}')
    _write(directory, f'{name}.ext', '\n'.join(ext) + '\n')
    _openssl('x509', '-req', '-in', f'{name}.csr', '-CA', 'ca.pem',
             '-CAkey', 'ca.key', '-CAcreateserial', '-days', _DAYS,
             '-sha256', '-extfile', f'{name}.ext', '-out', f'{name}.pem',
             cwd=directory)


class Certs:
    """Paths of the test certificates, and context helpers."""

    def __init__(self, directory):
        self.dir = directory
        for name in ('ca', 'server', 'wrong_host', 'untrusted', 'client'):
            setattr(self, name + '_cert', os.path.join(directory, name + '.pem'))
            setattr(self, name + '_key', os.path.join(directory, name + '.key'))

    def server_context(self, cert='server'):
        """A server-side SSLContext presenting the named certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(getattr(self, cert + '_cert'),
                            getattr(self, cert + '_key'))
        return ctx

    def client_context(self, *, verify=True):
        """A client-side SSLContext trusting the test CA (verify=False:
        no certificate or hostname check at all)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.load_verify_locations(self.ca_cert)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def make_certs(directory):
    """Generate every certificate listed in the module docstring into
    directory; returns a Certs."""
    _openssl('req', '-x509', *_KEY, '-keyout', 'ca.key', '-out', 'ca.pem',
             '-days', _DAYS, '-sha256', '-subj', '/CN=ourloop test CA',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
             '-addext', 'subjectKeyIdentifier=hash', cwd=directory)
    _leaf(directory, 'server', '/CN=localhost',
          'DNS:localhost,IP:127.0.0.1,IP:::1', 'serverAuth')
    _leaf(directory, 'wrong_host', '/CN=wrong.invalid', 'DNS:wrong.invalid',
          'serverAuth')
    _leaf(directory, 'client', '/CN=ourloop test client', None, 'clientAuth')
    _openssl('req', '-x509', *_KEY, '-keyout', 'untrusted.key',
             '-out', 'untrusted.pem', '-days', _DAYS, '-sha256',
             '-subj', '/CN=localhost',
             '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
             cwd=directory)
    return Certs(directory)
