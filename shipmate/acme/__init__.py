"""Certificates from an ACME server (Let's Encrypt, or Pebble in the tests) with certbot's
`acme` library: issue.py obtains one, renewal.py keeps every domain's certificate fresh."""
