#!/bin/sh
# Makes the test certificates for tests/unit_tls.c and tests/it_upstream_tls.c in
# DIR (which must exist and be empty): a CA and leaf certificates signed by it, good and broken
# ones. Nothing made here is ever committed; no private key is in the tree.
#
#   ca.crt ca.key       the test CA (ECDSA P-256)
#   ec.*   rsa.*        ECDSA P-256 and RSA 2048 leaves for a.test, b.test
#   wild.*              ECDSA, *.w.test
#   exact.*             ECDSA, x.w.test (exact before wildcard)
#   dup.*               ECDSA, a.test again (a duplicate name)
#   rsa_a.*             RSA, a.test only (overlaps ec's names, not equal)
#   combined.pem        ec.crt followed by ec.key (key in the same file)
#   chain.pem           ec.crt followed by ca.crt (leaf first: good)
#   cafirst.pem         ca.crt followed by ec.crt (CA first: bad)
#   badchain.pem        ec.crt followed by rogue-ca.crt (not its issuer: a warning)
#   expired.*           valid 2020-2021
#   notyet.*            valid from 2090
#   soon.*              expires in 5 days (a warning)
#   rsa1024.*           an RSA 1024 key (security level 2 refuses it)
#   sha1.*              signed with SHA-1 (security level 2 refuses it)
#   enc.key             ec.key encrypted with a passphrase
#   client.*            a client certificate (CN=client) from the CA
#   rogue.*             a client certificate from another CA
#   nosan.*             ECDSA, no subjectAltName
#
# Every file is mode 0600 (umask 077): tests chmod a key to check the
# warning about key files readable by others.
set -eu

dir=$1
cd "$dir"
umask 077

cat > ca.cnf <<'EOF'
[ca]
default_ca = test
[test]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
EOF
: > index.txt
echo 01 > serial

ec_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

rsa_key() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1" 2>/dev/null
}

# sign NAME CN EXTENSIONS [openssl ca options...]: NAME.crt from NAME.key, signed by the CA
# (or by the CA named in $SIGNER, default "ca").
sign() {
    name=$1
    cn=$2
    ext=$3
    shift 3
    signer=${SIGNER:-ca}
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    printf '%s\n' "$ext" | tr ';' '\n' > "$name.ext"
    openssl ca -batch -config ca.cnf -cert "$signer.crt" -keyfile "$signer.key" \
        -in "$name.csr" -out "$name.crt" -extfile "$name.ext" -notext "$@" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

leaf='basicConstraints=CA:false;keyUsage=digitalSignature,keyEncipherment'
server="$leaf;extendedKeyUsage=serverAuth"

ec_key ca.key
openssl req -x509 -new -key ca.key -subj /CN=test-ca -days 30 -out ca.crt \
    -addext basicConstraints=critical,CA:true -addext keyUsage=keyCertSign,cRLSign

ec_key ec.key
sign ec ec-ab "$server;subjectAltName=DNS:a.test,DNS:b.test" -days 30
rsa_key rsa.key 2048
sign rsa rsa-ab "$server;subjectAltName=DNS:b.test,DNS:A.test" -days 30
ec_key wild.key
sign wild wild "$server;subjectAltName=DNS:*.w.test" -days 30
ec_key exact.key
sign exact exact "$server;subjectAltName=DNS:x.w.test" -days 30
ec_key dup.key
sign dup dup "$server;subjectAltName=DNS:c.test,DNS:a.test" -days 30
rsa_key rsa_a.key 2048
sign rsa_a rsa-a "$server;subjectAltName=DNS:a.test" -days 30
ec_key nosan.key
sign nosan nosan "$server" -days 30

cat ec.crt ec.key > combined.pem
cat ec.crt ca.crt > chain.pem
cat ca.crt ec.crt > cafirst.pem

ec_key expired.key
sign expired expired "$server;subjectAltName=DNS:old.test" \
    -startdate 20200101000000Z -enddate 20210101000000Z
ec_key notyet.key
sign notyet notyet "$server;subjectAltName=DNS:new.test" \
    -startdate 20900101000000Z -enddate 20910101000000Z
ec_key soon.key
sign soon soon "$server;subjectAltName=DNS:soon.test" -days 5
rsa_key rsa1024.key 1024
sign rsa1024 rsa1024 "$server;subjectAltName=DNS:weak.test" -days 30
ec_key sha1.key
sign sha1 sha1 "$server;subjectAltName=DNS:sha1.test" -days 30 -md sha1

openssl pkey -in ec.key -out enc.key -aes256 -passout pass:secret

ec_key client.key
sign client client "$leaf;extendedKeyUsage=clientAuth" -days 30

ec_key rogue-ca.key
openssl req -x509 -new -key rogue-ca.key -subj /CN=rogue-ca -days 30 -out rogue-ca.crt \
    -addext basicConstraints=critical,CA:true -addext keyUsage=keyCertSign,cRLSign
ec_key rogue.key
SIGNER=rogue-ca sign rogue rogue "$leaf;extendedKeyUsage=clientAuth" -days 30

cat ec.crt rogue-ca.crt > badchain.pem

# For tests/it_upstream_tls.c, a TLS upstream:
#   up.*                ECDSA, app.internal and IP 127.0.0.1, from the CA
#   uprogue.*           the same names from rogue-ca (an unknown CA)
ec_key up.key
sign up up "$server;subjectAltName=DNS:app.internal,IP:127.0.0.1" -days 30
ec_key uprogue.key
SIGNER=rogue-ca sign uprogue uprogue "$server;subjectAltName=DNS:app.internal,IP:127.0.0.1" \
    -days 30
