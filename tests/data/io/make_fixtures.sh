#!/usr/bin/env bash
# Rebuild the tests/data/io fixtures (plink2 v2.00a3.5, 9 Aug 2022, Debian package).
# Usage: bash tests/data/io/make_fixtures.sh [/work/shared/data/1000g_eur_subset/EUR_subset]
set -euo pipefail
SRC=${1:-/work/shared/data/1000g_eur_subset/EUR_subset}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. 60 samples x 200 variants of the 1000G EUR subset (random, seeded), variants with MAF >= 0.05
plink2 --bfile "$SRC" --maf 0.05 --make-bed --out "$WORK/common" >/dev/null
plink2 --bfile "$WORK/common" --thin-indiv-count 60 --thin-count 200 --seed 1 \
       --make-bed --out "$WORK/base" >/dev/null

# 2. Knock out ~3% of the genotypes directly in the .bed bytes (2-bit code 01 = missing), with plain numpy
python3 - "$WORK/base" "$HERE/eur60" <<'PY'
import shutil, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
n = sum(1 for _ in open(src + ".fam"))
m = sum(1 for _ in open(src + ".bim"))
raw = np.fromfile(src + ".bed", dtype=np.uint8)
body = raw[3:].reshape(m, (n + 3) // 4).copy()
rng = np.random.default_rng(2024)
variants, samples = np.nonzero(rng.random((m, n)) < 0.03)
shift = (2 * (samples % 4)).astype(np.uint8)
cols = samples // 4
body[variants, cols] = (body[variants, cols] & ~(np.uint8(3) << shift)) | (np.uint8(1) << shift)
with open(dst + ".bed", "wb") as handle:
    handle.write(raw[:3].tobytes()); handle.write(body.tobytes())
shutil.copy(src + ".bim", dst + ".bim"); shutil.copy(src + ".fam", dst + ".fam")
PY

cd "$HERE"
# 3. The same genotypes as .pgen (plink2 counts ALT = .bim column 5)
plink2 --bfile eur60 --make-pgen --out eur60 >/dev/null
# 4. Independent truth: allele frequencies and a dosage matrix (.raw) computed by plink2
plink2 --bfile eur60 --freq --out eur60_bed >/dev/null
plink2 --pfile eur60 --freq --out eur60_pgen >/dev/null
plink2 --bfile eur60 --export A --out eur60 >/dev/null
# 5. The same genotypes as BGEN 1.2 (8-bit probabilities, REF first so the second allele is ALT) + .sample
plink2 --bfile eur60 --export bgen-1.2 bits=8 ref-first --out eur60 >/dev/null
rm -f ./*.log
