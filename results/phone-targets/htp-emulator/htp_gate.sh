set -x
B=/work/main/.venv/bin/rtmw-bench
D="--images /work/runs/qnn/data/images/val --ann /work/runs/qnn/data/annotations/coco_wholebody_val_v1.0.json --no-flip --batch 1 --accuracy-only"
start=$(date +%s)
$B run onnx/onnx $D --out /work/runs/qnn/ref-cpu -q
echo "ref took $(( $(date +%s) - start ))"
for pol in head-neck-fp32 none; do
  t=$(date +%s)
  $B run qnn-$pol/qnn-w8a16 $D --device htp --reference onnx/onnx --out /work/runs/qnn/htp-$pol -q
  echo "htp $pol took $(( $(date +%s) - t ))"
  $B gate --reference /work/runs/qnn/ref-cpu/results.json --candidate /work/runs/qnn/htp-$pol/results.json --markdown /work/runs/qnn/gate-htp-$pol.md --allow-cross-host
  echo "gate $pol exit $?"
  t=$(date +%s)
  $B run qnn-$pol/qnn-w8a16 $D --device cpu --reference onnx/onnx --out /work/runs/qnn/cpu-$pol -q
  echo "cpu $pol took $(( $(date +%s) - t ))"
  $B gate --reference /work/runs/qnn/ref-cpu/results.json --candidate /work/runs/qnn/cpu-$pol/results.json --markdown /work/runs/qnn/gate-cpu-$pol.md
  echo "gate cpu $pol exit $?"
done
echo DONE
