#!/usr/bin/env bash
# Set up the environment if needed, then the main job, offline on 2 CPU cores in a few minutes:
# 1. `resfx bench --quick`: what freezing saves on this machine (table, JSON, charts in runs/bench);
# 2. a feature-extraction run (frozen ResNet34, new head) on the embedded SYNTHETIC
#    CIFAR-10-shaped data, with its loss/accuracy plot in runs/synthetic;
# 3. `resfx probe`: validation-tuned linear and kNN probes on each stage of a frozen ResNet18
#    (stem, layer1..layer4), one frozen pass for all stages, 3 seeds, on generated gratings
#    whose classes differ in texture, not colour (scripts/probe_demo_data.py): the table,
#    runs/probe/probe.json and probe.png.
# ImageNet weights are used when they are in torch's cache; otherwise the backbone is random.
source "$(dirname "$0")/_env.sh"
weights=$(python -c "import resfx; p = resfx.weights.PRETRAINED['resnet34.IMAGENET1K_V1'].cache_path; print('IMAGENET1K_V1' if p.is_file() else 'none')")
probe_weights=$(python -c "import resfx; p = resfx.weights.PRETRAINED['resnet18.IMAGENET1K_V1'].cache_path; print('IMAGENET1K_V1' if p.is_file() else 'none')")
resfx bench --quick --out runs/bench --overwrite
resfx train --data synthetic --weights "$weights" --mode cached --trainset-size 5000 \
    --testset-size 1000 --epochs 5 --image-size 64 --device cpu --output-dir runs/synthetic --overwrite
python "$(dirname "$0")/probe_demo_data.py" runs/probe-data
resfx probe --data runs/probe-data --archs resnet18 --weights "$probe_weights" --trainset-size 2000 \
    --testset-size 500 --image-size 64 --seeds 3 --output-dir runs/probe --overwrite
echo "main job done: runs/bench (benchmark report), runs/synthetic (training history and plot), runs/probe (probe per stage)"
