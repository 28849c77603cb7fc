/*
 * pgf.h: reading and writing pgformer model files (.pgf).
 *
 *   "PGFMODEL" | format version u32 LE | header length u32 LE |
 *   ModelHeader (protobuf, proto/model.proto) | zero padding to 64 |
 *   data section (tensors, each at a 64-byte aligned offset)
 *
 * pgf_open() checks everything a later reader relies on before any tensor
 * is handed out: magic, version, header length, protobuf decoding, that
 * every string in the header is valid UTF-8 without NUL bytes (protobuf-c
 * checks neither; these strings become SQL text), that the data section is where the header says and as long, every tensor's
 * dtype, shape, byte length (overflow-checked), alignment and bounds,
 * unique names, no partial overlaps (identical ranges may be shared by
 * several layers), the item-id table (sorted, unique, I64), and, when
 * asked, the CRC-32 of the data section.  Architecture rules (tensor
 * shapes against the config) live in models/ (pgf_model_check).
 *
 * No PostgreSQL dependency: protobuf memory goes through a caller-supplied
 * ProtobufCAllocator (palloc in the extension, malloc elsewhere).
 */
#ifndef PGF_PGF_H
#define PGF_PGF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "proto/model.pb-c.h"

#define PGF_MAGIC "PGFMODEL"
#define PGF_MAGIC_LEN 8
#define PGF_FORMAT_VERSION 1
#define PGF_PREAMBLE_LEN 16		/* magic + version + header length */
#define PGF_ALIGN 64
#define PGF_MAX_DIMS 8
#define PGF_MAX_HEADER_LEN (256u * 1024 * 1024)

typedef enum PgfStatus
{
	PGF_OK = 0,
	PGF_ERR_TRUNCATED,			/* fewer bytes than the header promises */
	PGF_ERR_MAGIC,				/* not a pgformer model file */
	PGF_ERR_VERSION,			/* a format version this build cannot read */
	PGF_ERR_HEADER,				/* the header does not decode or is
								 * inconsistent */
	PGF_ERR_TENSOR,				/* a tensor entry is invalid */
	PGF_ERR_CHECKSUM,			/* the data section is corrupted */
	PGF_ERR_CONFIG,				/* tensors disagree with the architecture's
								 * config */
	PGF_ERR_NOMEM,
	PGF_ERR_IO
} PgfStatus;

/* A validated tensor: a read-only view into the data section. */
typedef struct PgfTensor
{
	const char *name;
	PgfDType	dtype;
	int			ndim;
	int64_t		shape[PGF_MAX_DIMS];
	int64_t		numel;
	const void *data;
	size_t		nbytes;
	const float *scales;		/* Q8 */
	int			quant_block;	/* Q8 */
} PgfTensor;

/* A validated model file.  Views point into the caller's bytes. */
typedef struct PgfModel
{
	const uint8_t *bytes;
	size_t		size;
	Pgformer__ModelHeader *header;
	const ProtobufCAllocator *allocator;
	const uint8_t *data;		/* the data section */
	size_t		data_size;
	int			n_tensors;
	PgfTensor  *tensors;		/* sorted by name */
	const int64_t *item_ids;	/* sorted external item ids, or NULL */
	size_t		n_items;
	uint64_t	n_params;		/* elements of every distinct float tensor */
} PgfModel;

/* Also read the whole data section: CRC-32 and data-dependent checks. */
#define PGF_VERIFY_DATA 0x1

/*
 * Validates bytes[size] as a model file and fills *m.  On failure returns
 * a status, writes a message naming the problem into err[errlen] and leaves
 * nothing allocated.  The bytes must stay valid and unchanged while m is in
 * use.  allocator may be NULL (malloc).
 */
PgfStatus	pgf_open(PgfModel *m, const void *bytes, size_t size, unsigned flags,
					 const ProtobufCAllocator *allocator, char *err, size_t errlen);

/* Frees what pgf_open allocated (not the bytes). */
void		pgf_close(PgfModel *m);

/* The tensor called name, or NULL. */
const PgfTensor *pgf_find(const PgfModel *m, const char *name);

/* A tensor as a weight matrix [shape[0], product of the rest]. */
PgfMatrix	pgf_tensor_matrix(const PgfTensor *t);

/*
 * Reads the 16-byte preamble: checks magic and version and returns the
 * header length.  Lets a streaming reader size its first read.
 */
PgfStatus	pgf_read_preamble(const void *bytes, size_t size, uint32_t *header_len,
							  char *err, size_t errlen);

/* Offset of the data section for a header of header_len bytes. */
size_t		pgf_data_offset(uint32_t header_len);

/*
 * The whole file at path in 64-byte aligned malloc'd memory (free() it),
 * *size bytes; NULL (errno set) when it cannot be read.  For hosts with no
 * I/O of their own: tests, benchmarks, command-line tools.
 */
uint8_t    *pgf_read_file(const char *path, size_t *size);

/* zlib CRC-32, continuing from crc (start with 0). */
uint32_t	pgf_crc32(uint32_t crc, const void *bytes, size_t n);

/* Size in bytes of one element of dtype (Q8: 1), or 0 if unknown. */
size_t		pgf_dtype_size(PgfDType dtype);
const char *pgf_dtype_name(PgfDType dtype);

/* Human name of a status. */
const char *pgf_status_name(PgfStatus s);

/*
 * Writer: collects tensors in memory, then writes a whole file.  The
 * caller fills `header` (architecture, name, config, side tables); the
 * writer owns the tensor index, data size and checksum.  Used by the C
 * tests; the Python writer in tools/pgf.py is the one exporters use.
 */
typedef struct PgfWriter
{
	Pgformer__ModelHeader header;
	Pgformer__Tensor **tensors;
	int			n_tensors;
	int			cap_tensors;
	uint8_t    *data;
	size_t		data_size;
	size_t		data_cap;
} PgfWriter;

void		pgf_writer_init(PgfWriter *w);

/* Copies the tensor; shape has ndim entries. Returns 0 or -1 (no memory). */
int			pgf_writer_add(PgfWriter *w, const char *name, PgfDType dtype,
						   const int64_t *shape, int ndim, const void *data);

/*
 * The whole file in one malloc'd buffer (*out, *out_len).  Returns 0 or -1.
 */
int			pgf_writer_finish(PgfWriter *w, uint8_t **out, size_t *out_len);
void		pgf_writer_free(PgfWriter *w);

#endif							/* PGF_PGF_H */
