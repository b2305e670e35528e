#!/bin/bash
# Session 32: maml-cheetah-vel seed 0 with the session's faster meta-step (one-thread sampling, hand-written
# Fisher-vector products), both cores: the paper's 475 meta-steps, then on toward a 2-hour budget in all.
cd /work/main
M=.venv/bin/metaloop
start=$(date +%s)
$M train maml-cheetah-vel --seed 0 --set train.threads=2 --set baseline.pretrain_steps=0 \
    --set train.max_minutes=120 --run-dir runs/cv-s32-seed0 --quiet
used=$(( ($(date +%s) - start) ))
echo "475 done after $used s"
cp -r runs/cv-s32-seed0 runs/cv-s32-seed0-2h
left=$(python3 -c "print(round(min(120 - $used/60, ${CV_MINUTES:-68} - $used/60), 2))")
echo "resuming for $left minutes"
$M train --resume runs/cv-s32-seed0-2h --set train.meta_steps=3000 --set train.threads=2 --set train.max_minutes=$left --quiet
echo "stopped after $(( $(date +%s) - start )) s"
