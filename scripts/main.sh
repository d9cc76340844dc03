#!/usr/bin/env bash
# Set up the environment if needed, then the main job, offline on 2 CPU cores in a few minutes:
# 1. `resfx bench --quick`: what freezing saves on this machine (table, JSON, charts in runs/bench);
# 2. a feature-extraction run (frozen ResNet34, new head) on the embedded SYNTHETIC
#    CIFAR-10-shaped data, with its loss/accuracy plot in runs/synthetic;
# 3. `resfx extract`: every stage's pooled features of a frozen ResNet18 over generated gratings
#    whose classes differ in texture, not colour (scripts/probe_demo_data.py), decoded once in
#    worker processes, into the feature store runs/probe-store (manifest.json + .npy shards);
# 4. one extraction, many readers: `resfx probe --features` (validation-tuned linear and kNN
#    probes per stage, 3 seeds: the table, runs/probe/probe.json and probe.png) and
#    `resfx train --features` (a new head on the store's pooled features, runs/store-head).
# ImageNet weights are used when they are in torch's cache; otherwise the backbone is random.
source "$(dirname "$0")/_env.sh"
weights=$(python -c "import resfx; p = resfx.weights.PRETRAINED['resnet34.IMAGENET1K_V1'].cache_path; print('IMAGENET1K_V1' if p.is_file() else 'none')")
probe_weights=$(python -c "import resfx; p = resfx.weights.PRETRAINED['resnet18.IMAGENET1K_V1'].cache_path; print('IMAGENET1K_V1' if p.is_file() else 'none')")
resfx bench --quick --out runs/bench --overwrite
resfx train --data synthetic --weights "$weights" --mode cached --trainset-size 5000 \
    --testset-size 1000 --epochs 5 --image-size 64 --device cpu --output-dir runs/synthetic --overwrite
python "$(dirname "$0")/probe_demo_data.py" runs/probe-data
resfx extract --data runs/probe-data --out runs/probe-store --arch resnet18 --weights "$probe_weights" \
    --stages stem,layer1,layer2,layer3,layer4,pooled --image-size 64 --device cpu --overwrite
resfx probe --features runs/probe-store --seeds 3 --output-dir runs/probe --overwrite
resfx train --features runs/probe-store --mode cached --arch resnet18 --weights "$probe_weights" \
    --epochs 5 --device cpu --output-dir runs/store-head --overwrite
echo "main job done: runs/bench (benchmark report), runs/synthetic (training history and plot), runs/probe-store (feature store), runs/probe (probe per stage), runs/store-head (a head trained on the store)"
