#!/usr/bin/env bash
# The paper's experiments, offline: every `owsd run` of lightning_configs/offline/ into runs/offline/, then
# `owsd report` into results/offline/ (Markdown and PNG only, committed). About 30 minutes on a 2-core CPU
# from an empty cache; a second time, only the IIN fits run.
set -euo pipefail
cd "$(dirname "$0")/.."
C=lightning_configs/offline
O=${OWSD_RUNS:-runs/offline}
mkdir -p "$O"

run() {  # run NAME CONFIG [CONFIG...]: one `owsd run` into $O/NAME (replacing an earlier one)
  local name=$1; shift
  local configs=()
  for config in "$@"; do configs+=(--config "$config"); done
  rm -rf "${O:?}/$name"
  owsd run "${configs[@]}" --out "$O/$name"
}

run mnist_cifar10_cloud "$C/mnist_cifar10_cloud.yaml"
run mnist_cifar10_ensembles "$C/mnist_cifar10_cloud.yaml" "$C/mnist_cifar10_ensembles.yaml"
run mnist_imagenet_cloud "$C/mnist_imagenet_cloud.yaml"
run mnist_labels2 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels2.yaml"
run mnist_labels5 "$C/mnist_imagenet_cloud.yaml" "$C/mnist_labels5.yaml"
run mnist_images_per_label "$C/mnist_imagenet_cloud.yaml" "$C/mnist_images_per_label.yaml"

owsd report "$O"/mnist_imagenet_cloud "$O"/mnist_cifar10_cloud "$O"/mnist_labels2 "$O"/mnist_labels5 \
  "$O"/mnist_cifar10_ensembles "$O"/mnist_images_per_label --out results/offline --replace
