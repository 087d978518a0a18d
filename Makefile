# Quick start: `make demo` and `make test`. Both create .venv from requirements.txt when it is missing
# or older than requirements.txt / pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPROC := $(shell nproc 2>/dev/null || echo 2)

# Demo data: the embedded synthetic VOC set, packed into RecordIO.
DEMO_ROOT := DATA/VOCdevkit
DEMO_DATA := data
DEMO_OUT := output/demo
DEMO_PREFIX := model/demo/ssd_demo

.PHONY: venv demo demo-data lint test test-fast bench bench-quick clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

$(DEMO_ROOT)/VOC2007/ImageSets/Main/test.txt: tools/synthetic_voc.py | $(STAMP)
	$(PY) tools/synthetic_voc.py --root $(DEMO_ROOT) --num-trainval 2000 --num-test 500 --seed 0

$(DEMO_DATA)/train.rec: $(DEMO_ROOT)/VOC2007/ImageSets/Main/test.txt
	$(PY) tools/prepare_dataset.py --dataset pascal --year 2007 --set trainval --root $(DEMO_ROOT) \
		--target $(DEMO_DATA)/train.lst --num-thread $(NPROC)

$(DEMO_DATA)/val.rec: $(DEMO_ROOT)/VOC2007/ImageSets/Main/test.txt
	$(PY) tools/prepare_dataset.py --dataset pascal --year 2007 --set test --root $(DEMO_ROOT) \
		--target $(DEMO_DATA)/val.lst --no-shuffle --num-thread $(NPROC)

demo-data: $(DEMO_DATA)/train.rec $(DEMO_DATA)/val.rec

# The main job: generate -> pack -> preview the batches training sees -> train a small MobileNet from
# scratch with the measured recipe (config/recipes.py) -> mAP per epoch and the final per-class AP table ->
# detections of the best epoch drawn on six test images.
demo: demo-data
	$(PY) tools/preview_batches.py --rec $(DEMO_DATA)/train.rec --preset mirror \
		--out $(DEMO_OUT)/train_batches.png
	$(PY) tools/preview_batches.py --rec $(DEMO_DATA)/val.rec --preset val \
		--out $(DEMO_OUT)/val_batches.png
	$(PY) train.py --recipe demo --train-path $(DEMO_DATA)/train.rec --val-path $(DEMO_DATA)/val.rec \
		--prefix $(DEMO_PREFIX) --log $(DEMO_OUT)/train.log --overwrite
	$(PY) demo.py --prefix $(DEMO_PREFIX) --cpu --out $(DEMO_OUT)/detections --images \
		$$(head -n 6 $(DEMO_ROOT)/VOC2007/ImageSets/Main/test.txt | sed 's|.*|$(DEMO_ROOT)/VOC2007/JPEGImages/&.jpg|' | paste -sd, -)
	@echo "demo: batch pictures in $(DEMO_OUT)/, detections drawn in $(DEMO_OUT)/detections/, log" \
		"$(DEMO_OUT)/train.log, checkpoints and training curves under $(DEMO_PREFIX)*"

# Lint and import order (ruff, configured in pyproject.toml); make test runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf $(DEMO_DATA) $(DEMO_ROOT) $(DEMO_OUT) model/demo .pytest_cache
