# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench labs clean native

# The venv is (re)built only when pyproject.toml changes, so the second run starts at once.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,plot]'
	touch $(STAMP)

# jaxnn's optional native CPU kernels (native/: oneDNN's convolutions and matrix product and an RNN time loop through
# jax.ffi), built when a C++ compiler and the package index are there; otherwise one line says why, and jaxnn runs on
# its XLA path. `make test NATIVE_ARGS=--fail` acts as if the build failed: the suite on the XLA path alone.
NATIVE := jaxnn/_native/libjaxnn_native.so
NATIVE_ARGS ?=
$(NATIVE): $(STAMP) $(wildcard native/*.cc native/*.h) native/build.py
	$(PY) native/build.py $(NATIVE_ARGS)
native: $(STAMP)
	$(PY) native/build.py $(NATIVE_ARGS)

# The main job: lab 10-1, the MNIST CNN, on the MNIST copy shipped in data/mnist (5 epochs: 70-85 s on
# 2 CPU cores; `make run RUN_ARGS="--epochs 15"` for the lab's full run). Each `make run` starts a fresh run in
# runs/mnist_cnn (--overwrite); resume one with `python experiments/mnist_cnn.py --resume`.
RUN_ARGS ?= --epochs 5
run: $(STAMP) $(NATIVE)
	$(PY) experiments/mnist_cnn.py --overwrite $(RUN_ARGS)

# Lint (ruff check and format check) first: CI fails on a lint error. pytest ends with its ten slowest tests and its
# wall time, so that every change shows what it costs (the budget: README, "Development").
test: $(STAMP) $(NATIVE)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	@start=$$(date +%s); $(PY) -m pytest -q -n 2 --dist load --maxschedchunk 2 --durations 10 $(TEST_ARGS); \
	status=$$?; echo "make test: pytest took $$(( $$(date +%s) - start )) s wall"; exit $$status

bench: $(STAMP) $(NATIVE)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# Every lab of the registry (python -m jaxnn lists them) but the MNIST one, quickly: the demos, the RNN recipes at
# the labs' sizes, VGG-BN and ResNet-18 (CIFAR stem) on a slice of MNIST padded to 32x32, and the port guide (a
# torchvision-layout ResNet-18 compared with PyTorch layer by layer, then fine-tuned), the worked port and lab 10-1's
# first epoch from torch.manual_seed(777) in PyTorch and in jaxnn. Each recipe starts over in runs/LAB (--overwrite).
LABS_OF = $(PY) -c "from jaxnn.labs.registry import LABS; print(*[n for n, lab in LABS.items() if lab.kind == '$(1)' and n not in ('mnist_cnn', 'cifar')])"
labs: $(STAMP) $(NATIVE)
	for lab in $$($(call LABS_OF,demo)); do $(PY) -m jaxnn $$lab || exit 1; done
	for lab in $$($(call LABS_OF,recipe)); do $(PY) -m jaxnn $$lab --overwrite || exit 1; done
	$(PY) -m jaxnn cifar --model vgg --batch_size 128 --train_subset 1024 --test_subset 500 --no_progress --overwrite
	$(PY) -m jaxnn cifar --model resnet --arch resnet18 --train_subset 2048 --test_subset 1000 --no_progress --overwrite
	$(PY) -m jaxnn port_resnet --overwrite
	$(PY) examples/port_your_model.py
	$(PY) examples/same_seed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .jax_cache
