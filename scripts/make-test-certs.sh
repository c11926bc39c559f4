#!/usr/bin/env bash
# Makes a test CA and certificates for relaykv's TLS/mTLS (README
# "Security") with openssl, into DIR (created 0700):
#   ca.pem ca.key                     the test CA (10 years)
#   node.pem node.key                 server certificate for every relaykvd:
#                                     SAN IP:127.0.0.1, IP:::1, DNS:localhost
#   <name>.pem <name>.key             client certificates, CN = <name>, for
#                                     admin, writer, reader, repl, nobody
#   other-ca.pem other.pem other.key  a second CA and a client it signed
#                                     (tests: a wrong-CA client is refused)
#   roles.txt                         a roles file for these identities
#   token.txt                         a bearer token (its SHA-256 in roles.txt as "app")
# Usage: scripts/make-test-certs.sh DIR [extra client names...]
# For tests and demos only: keys are unencrypted, the CA key sits next to them.
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR [client names...]}
shift
clients=(admin writer reader repl nobody "$@")
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077

ossl() { openssl "$@" 2>/dev/null; }

make_ca() {  # name
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=relaykv test CA $1" -keyout "$1.key" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

sign() {  # ca name subject extfile
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$2.key" -out "$2.csr"
  ossl x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 825 \
    -extfile "$4" -out "$2.pem"
  rm -f "$2.csr"
}

make_ca ca
make_ca other-ca

cat > node.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
sign ca node "/CN=relaykv-node" node.ext

cat > client.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
for c in "${clients[@]}"; do sign ca "$c" "/CN=$c" client.ext; done
sign other-ca other "/CN=admin" client.ext   # claims to be admin; signed by the wrong CA
rm -f node.ext client.ext ./*.srl

token=$(openssl rand -hex 24)
printf '%s\n' "$token" > token.txt
cat > roles.txt <<ROLES
# relaykv roles: IDENTITY: roles (certificate CN or SAN), or
# token IDENTITY SHA256-OF-TOKEN: roles.  Roles: read, write, replication, admin.
admin: read, write, replication, admin
writer: read, write
reader: read
repl: replication
token app $(printf '%s' "$token" | sha256sum | cut -d' ' -f1): read, write
ROLES
echo "make-test-certs: CA, node and client certificates (${clients[*]}) in $dir"
