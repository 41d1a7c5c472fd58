#!/usr/bin/env bash
# The README's security figures: `owsd attack` and `owsd analyze` on the offline demo (5,000 MNIST digits,
# EfficientNet-Lite0 encoder, EfficientNet-Lite2 ImageNet cloud, in-process) under 3 assessment keys derived
# from seed 0, so that anybody regenerates the same figures (such keys are public: allowed with an in-process
# cloud only; the user's own key is never used). Work goes to runs/security/ (an interrupted run resumes), the
# results to results/security/: summary.md, a PNG per curve, attacks.json, defences.json, key_budget.json,
# and analysis/ (analysis.json, pca.png, pairs.png), each with the provenance.json of its run (commit, command,
# machine, wall time). About 2 hours on a 2-core CPU that other jobs shared (results/security/provenance.json).
set -euo pipefail
cd "$(dirname "$0")/.."
O=${OWSD_RUNS:-runs/security}
mkdir -p "$O"
rm -rf "${O:?}/attack" "${O:?}/analyze"  # finished earlier runs; an interrupted one (.partial) is resumed
owsd attack --config lightning_configs/demo.yaml --attack.keys.seed 0 --out "$O/attack"
owsd analyze --config lightning_configs/demo.yaml --analysis.keys.seed 0 --out "$O/analyze"

new=results/security.new
rm -rf "$new" && mkdir -p "$new/analysis"
cp "$O"/attack/{summary.md,attacks.json,defences.json,key_budget.json,provenance.json} "$O"/attack/*.png "$new/"
cp "$O"/analyze/{analysis.json,pca.png,pairs.png,provenance.json} "$new/analysis/"
rm -rf results/security && mv "$new" results/security
echo "wrote results/security"
