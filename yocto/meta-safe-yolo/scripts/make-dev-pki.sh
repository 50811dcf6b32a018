#!/bin/sh
# Makes a throw-away update-signing PKI for development builds:
#   DIR/ca.cert.pem       CA the image trusts (RAUC keyring)
#   DIR/signer.*.pem      bundle signing key + certificate (codeSigning EKU)
# Never use it for boxes in the field: a plant's PKI keeps the CA key offline
# and the signing key in an HSM (see README.md, "Signing").
# Usage: make-dev-pki.sh [DIR]   (default: build/dev-pki)
set -eu
dir=${1:-build/dev-pki}
mkdir -p "$dir"
cd "$dir"
[ -f ca.cert.pem ] && { echo "make-dev-pki: $dir already has a PKI"; exit 0; }
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key.pem -out ca.cert.pem -days 3650 -subj "/O=SAFE-YOLO development/CN=SAFE-YOLO dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout signer.key.pem -out signer.csr -subj "/O=SAFE-YOLO development/CN=SAFE-YOLO dev signer"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,codeSigning\n' >signer.ext
openssl x509 -req -in signer.csr -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial \
    -out signer.cert.pem -days 730 -extfile signer.ext
rm -f signer.csr signer.ext
echo "make-dev-pki: development PKI in $(pwd)"
