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

.PHONY: venv demo demo-data test test-fast bench bench-quick clean

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

# The main job as far as the pipeline goes today: generate -> pack -> read back with augmentation ->
# save preview pictures of augmented batches with their boxes drawn.
demo: demo-data
	$(PY) tools/preview_batches.py --rec $(DEMO_DATA)/train.rec --preset ssd_train \
		--out $(DEMO_OUT)/train_batches.png
	$(PY) tools/preview_batches.py --rec $(DEMO_DATA)/val.rec --preset val \
		--out $(DEMO_OUT)/val_batches.png
	@echo "demo: pictures in $(DEMO_OUT)/"

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) bench/bench_data.py

bench-quick: $(STAMP)
	$(PY) bench/bench_data.py --quick

clean:
	rm -rf $(DEMO_DATA) $(DEMO_ROOT) $(DEMO_OUT) .pytest_cache
