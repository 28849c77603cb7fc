/*
 * pgf.c: the .pgf reader (validation first, then views) and the C writer.
 *
 * Nothing in a file is trusted: every length and offset is checked against
 * the bytes actually present, every multiplication is overflow-checked, and
 * the first problem found is reported by name.
 */
#include "proto/pgf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kernels/runtime.h"
#include "proto/utf8.h"

#define PGF_MAX_NAME_LEN 255

/* Writes a message into err[errlen] and gives status back (kernels/runtime.h). */
#define fail(err, errlen, status, ...) (pgf_error((err), (errlen), __VA_ARGS__), (status))

static uint32_t
read_le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static void
write_le32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

size_t
pgf_dtype_size(PgfDType dtype)
{
	switch (dtype)
	{
		case PGF_DTYPE_F32:
		case PGF_DTYPE_I32:
			return 4;
		case PGF_DTYPE_F16:
		case PGF_DTYPE_BF16:
			return 2;
		case PGF_DTYPE_Q8:
			return 1;
		case PGF_DTYPE_I64:
			return 8;
	}
	return 0;
}

const char *
pgf_dtype_name(PgfDType dtype)
{
	switch (dtype)
	{
		case PGF_DTYPE_F32:
			return "f32";
		case PGF_DTYPE_F16:
			return "f16";
		case PGF_DTYPE_BF16:
			return "bf16";
		case PGF_DTYPE_Q8:
			return "q8";
		case PGF_DTYPE_I32:
			return "i32";
		case PGF_DTYPE_I64:
			return "i64";
	}
	return "unknown";
}

const char *
pgf_status_name(PgfStatus s)
{
	switch (s)
	{
		case PGF_OK:
			return "ok";
		case PGF_ERR_TRUNCATED:
			return "truncated file";
		case PGF_ERR_MAGIC:
			return "not a model file";
		case PGF_ERR_VERSION:
			return "unsupported format version";
		case PGF_ERR_HEADER:
			return "invalid header";
		case PGF_ERR_TENSOR:
			return "invalid tensor";
		case PGF_ERR_CHECKSUM:
			return "checksum mismatch";
		case PGF_ERR_CONFIG:
			return "tensors disagree with the config";
		case PGF_ERR_NOMEM:
			return "out of memory";
		case PGF_ERR_IO:
			return "I/O error";
	}
	return "unknown status";
}

uint8_t *
pgf_read_file(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	long		n;
	uint8_t    *bytes;

	*size = 0;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return NULL;
	}
	bytes = aligned_alloc(PGF_ALIGN, ((size_t) n + PGF_ALIGN) / PGF_ALIGN * PGF_ALIGN);
	if (bytes == NULL || fread(bytes, 1, (size_t) n, f) != (size_t) n)
	{
		free(bytes);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*size = (size_t) n;
	return bytes;
}

uint32_t
pgf_crc32(uint32_t crc, const void *bytes, size_t n)
{
	return (uint32_t) crc32_z(crc, bytes, n);
}

size_t
pgf_data_offset(uint32_t header_len)
{
	size_t		end = (size_t) PGF_PREAMBLE_LEN + header_len;

	return (end + PGF_ALIGN - 1) & ~(size_t) (PGF_ALIGN - 1);
}

PgfStatus
pgf_read_preamble(const void *bytes, size_t size, uint32_t *header_len,
				  char *err, size_t errlen)
{
	const uint8_t *p = bytes;
	uint32_t	version;
	uint32_t	hlen;

	if (size < PGF_PREAMBLE_LEN)
		return fail(err, errlen, PGF_ERR_TRUNCATED,
					"file is %zu bytes, shorter than the %d-byte preamble",
					size, PGF_PREAMBLE_LEN);
	if (memcmp(p, PGF_MAGIC, PGF_MAGIC_LEN) != 0)
		return fail(err, errlen, PGF_ERR_MAGIC,
					"not a pgformer model file: it does not start with \"%s\"",
					PGF_MAGIC);
	version = read_le32(p + 8);
	if (version != PGF_FORMAT_VERSION)
		return fail(err, errlen, PGF_ERR_VERSION,
					"file has format version %u, this build reads version %d",
					version, PGF_FORMAT_VERSION);
	hlen = read_le32(p + 12);
	if (hlen == 0 || hlen > PGF_MAX_HEADER_LEN)
		return fail(err, errlen, PGF_ERR_HEADER,
					"header length %u is out of range (1 to %u bytes)",
					hlen, PGF_MAX_HEADER_LEN);
	*header_len = hlen;
	return PGF_OK;
}

/* a * b into *out, false on overflow past limit */
static bool
mul_checked(uint64_t a, uint64_t b, uint64_t limit, uint64_t *out)
{
	if (a != 0 && b > limit / a)
		return false;
	*out = a * b;
	return *out <= limit;
}

static void *
alloc_bytes(const ProtobufCAllocator *allocator, size_t n)
{
	if (allocator)
		return allocator->alloc(allocator->allocator_data, n);
	return malloc(n);
}

static void
free_bytes(const ProtobufCAllocator *allocator, void *p)
{
	if (p == NULL)
		return;
	if (allocator)
		allocator->free(allocator->allocator_data, p);
	else
		free(p);
}

/* Checks one tensor entry and fills its view. */
static PgfStatus
check_tensor(const Pgformer__Tensor *e, const uint8_t *data, size_t data_size,
			 PgfTensor *t, char *err, size_t errlen)
{
	const char *name = e->name;
	PgfDType	dtype = (PgfDType) e->dtype;
	size_t		esize = pgf_dtype_size(dtype);
	uint64_t	numel = 1;
	uint64_t	nbytes;
	size_t		name_len = name ? strlen(name) : 0;

	if (name_len == 0)
		return fail(err, errlen, PGF_ERR_TENSOR, "a tensor has an empty name");
	if (name_len > PGF_MAX_NAME_LEN)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"a tensor name is %zu bytes long, more than %d",
					name_len, PGF_MAX_NAME_LEN);
	if (esize == 0)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" has unknown dtype %d", name, (int) e->dtype);
	if (e->n_shape > PGF_MAX_DIMS)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" has %zu dimensions, more than %d",
					name, e->n_shape, PGF_MAX_DIMS);
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->dtype = dtype;
	t->ndim = (int) e->n_shape;
	for (size_t i = 0; i < e->n_shape; i++)
	{
		uint64_t	dim = e->shape[i];

		if (dim == 0 || dim > (uint64_t) INT32_MAX)
			return fail(err, errlen, PGF_ERR_TENSOR,
						"tensor \"%s\" has dimension %zu of size %llu (must be 1 to %d)",
						name, i, (unsigned long long) dim, INT32_MAX);
		if (!mul_checked(numel, dim, data_size, &numel))
			return fail(err, errlen, PGF_ERR_TENSOR,
						"tensor \"%s\" has more elements than the %zu-byte data section can hold",
						name, data_size);
		t->shape[i] = (int64_t) dim;
	}
	if (!mul_checked(numel, esize, data_size, &nbytes))
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" needs more bytes than the %zu-byte data section holds",
					name, data_size);
	if (e->nbytes != nbytes)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" declares %llu bytes but its shape and dtype need %llu",
					name, (unsigned long long) e->nbytes, (unsigned long long) nbytes);
	if (e->offset % PGF_ALIGN != 0)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" starts at offset %llu, not a multiple of %d",
					name, (unsigned long long) e->offset, PGF_ALIGN);
	if (e->offset > data_size || nbytes > data_size - e->offset)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" (offset %llu, %llu bytes) runs past the end of the %zu-byte data section",
					name, (unsigned long long) e->offset,
					(unsigned long long) nbytes, data_size);
	t->numel = (int64_t) numel;
	t->nbytes = (size_t) nbytes;
	t->data = data + e->offset;

	if (dtype == PGF_DTYPE_Q8)
	{
		uint64_t	block = e->quant_block;
		uint64_t	last = t->ndim > 0 ? (uint64_t) t->shape[t->ndim - 1] : 1;
		uint64_t	scale_bytes;

		if (block == 0 || last % block != 0)
			return fail(err, errlen, PGF_ERR_TENSOR,
						"tensor \"%s\": quantisation block %llu does not divide its last dimension %llu",
						name, (unsigned long long) block, (unsigned long long) last);
		scale_bytes = numel / block * sizeof(float);
		if (e->scale_nbytes != scale_bytes)
			return fail(err, errlen, PGF_ERR_TENSOR,
						"tensor \"%s\" declares %llu bytes of scales but needs %llu",
						name, (unsigned long long) e->scale_nbytes,
						(unsigned long long) scale_bytes);
		if (e->scale_offset % PGF_ALIGN != 0 || e->scale_offset > data_size ||
			scale_bytes > data_size - e->scale_offset)
			return fail(err, errlen, PGF_ERR_TENSOR,
						"tensor \"%s\": its scales (offset %llu, %llu bytes) are misaligned or run past the data section",
						name, (unsigned long long) e->scale_offset,
						(unsigned long long) scale_bytes);
		t->quant_block = (int) block;
		t->scales = (const float *) (data + e->scale_offset);
	}
	else if (e->quant_block != 0 || e->scale_offset != 0 || e->scale_nbytes != 0)
		return fail(err, errlen, PGF_ERR_TENSOR,
					"tensor \"%s\" has quantisation fields but dtype %s",
					name, pgf_dtype_name(dtype));
	return PGF_OK;
}

static int
compare_tensor_names(const void *a, const void *b)
{
	return strcmp(((const PgfTensor *) a)->name, ((const PgfTensor *) b)->name);
}

typedef struct ByteRange
{
	uint64_t	start;
	uint64_t	end;
	const char *owner;
	uint64_t	elements;		/* weights this range holds (0 for scales,
								 * integer tables) */
} ByteRange;

static int
compare_ranges(const void *a, const void *b)
{
	const ByteRange *x = a,
			   *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/*
 * Tensors may share bytes only as identical ranges (layer sharing); any
 * partial overlap is an error.  Also counts distinct parameters.
 */
static PgfStatus
check_overlaps(PgfModel *m, char *err, size_t errlen)
{
	int			n = 0;
	ByteRange  *ranges;
	PgfStatus	status = PGF_OK;

	ranges = alloc_bytes(m->allocator, sizeof(ByteRange) * 2 * (size_t) (m->n_tensors + 1));
	if (ranges == NULL)
		return fail(err, errlen, PGF_ERR_NOMEM, "out of memory checking tensor ranges");
	for (int i = 0; i < m->n_tensors; i++)
	{
		const PgfTensor *t = &m->tensors[i];
		uint64_t	start = (uint64_t) ((const uint8_t *) t->data - m->data);

		bool		is_weight = t->dtype == PGF_DTYPE_F32 || t->dtype == PGF_DTYPE_F16 ||
			t->dtype == PGF_DTYPE_BF16 || t->dtype == PGF_DTYPE_Q8;

		ranges[n++] = (ByteRange) {start, start + t->nbytes, t->name,
		is_weight ? (uint64_t) t->numel : 0};
		if (t->scales)
		{
			start = (uint64_t) ((const uint8_t *) t->scales - m->data);
			ranges[n++] = (ByteRange) {start, start + (uint64_t) t->numel / t->quant_block * sizeof(float), t->name, 0};
		}
	}
	qsort(ranges, n, sizeof(ByteRange), compare_ranges);
	m->n_params = 0;
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && ranges[i].start == ranges[i - 1].start &&
			ranges[i].end == ranges[i - 1].end)
			continue;			/* shared by several tensors */
		if (i > 0 && ranges[i].start < ranges[i - 1].end)
		{
			status = fail(err, errlen, PGF_ERR_TENSOR,
						  "tensors \"%s\" and \"%s\" overlap in the data section",
						  ranges[i - 1].owner, ranges[i].owner);
			break;
		}
		m->n_params += ranges[i].elements;
	}
	free_bytes(m->allocator, ranges);
	return status;
}

static PgfStatus
check_items(PgfModel *m, bool check_data, char *err, size_t errlen)
{
	const Pgformer__ItemTable *items = m->header->items;
	const PgfTensor *t;

	if (items == NULL || items->ids_tensor == NULL || items->ids_tensor[0] == '\0')
	{
		if (items && items->count != 0)
			return fail(err, errlen, PGF_ERR_HEADER,
						"the item table declares %llu items but names no tensor",
						(unsigned long long) items->count);
		return PGF_OK;
	}
	t = pgf_find(m, items->ids_tensor);
	if (t == NULL)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the item table names tensor \"%s\", which the file does not have",
					items->ids_tensor);
	if (t->dtype != PGF_DTYPE_I64 || t->ndim != 1)
		return fail(err, errlen, PGF_ERR_HEADER,
					"item id tensor \"%s\" must be a 1-d i64 tensor", t->name);
	if ((uint64_t) t->shape[0] != items->count)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the item table declares %llu items but tensor \"%s\" holds %lld",
					(unsigned long long) items->count, t->name, (long long) t->shape[0]);
	m->item_ids = t->data;
	m->n_items = (size_t) t->shape[0];
	if (check_data)
	{
		for (size_t i = 1; i < m->n_items; i++)
			if (m->item_ids[i] <= m->item_ids[i - 1])
				return fail(err, errlen, PGF_ERR_HEADER,
							"item ids in \"%s\" are not sorted and unique (at position %zu)",
							t->name, i);
	}
	return PGF_OK;
}

/* ---- header strings ---------------------------------------------------- */

/*
 * protobuf-c copies a string field's bytes as they are: it checks neither
 * UTF-8 nor embedded NUL bytes, and the unpacked char * no longer tells
 * where a NUL-truncated string really ended.  So the header's wire bytes
 * are walked once more, field by field, with the generated descriptors:
 * every occurrence of a string field (whatever its label, in whatever
 * nested message, map entries included) must be valid UTF-8 without NUL.
 * Bytes fields and unknown fields are not text and are not looked at.
 */

#define TEXT_PATH_LEN 256
#define TEXT_MAX_DEPTH 16
#define TEXT_MAX_COUNTED 64		/* repeated fields numbered per message */
#define TEXT_SHOW_BYTES 24		/* of the valid text before a bad byte */

typedef struct WireField
{
	uint32_t	number;
	unsigned	wire_type;
	const uint8_t *data;		/* length-delimited fields: the payload */
	size_t		len;
} WireField;

/* A varint of at most max_bytes at p[*pos..n) into *v. */
static bool
wire_varint(const uint8_t *p, size_t n, size_t *pos, int max_bytes, uint64_t *v)
{
	uint64_t	x = 0;

	for (int k = 0; k < max_bytes && *pos < n; k++)
	{
		uint8_t		b = p[(*pos)++];

		x |= (uint64_t) (b & 0x7f) << (7 * k);
		if ((b & 0x80) == 0)
		{
			*v = x;
			return true;
		}
	}
	return false;
}

/*
 * The field at p[*pos..n), with the limits protobuf-c decodes with (tags of
 * at most 5 bytes, no groups): 1 and *f filled, 0 at the end, -1 when the
 * bytes do not decode.
 */
static int
wire_next(const uint8_t *p, size_t n, size_t *pos, WireField *f)
{
	uint64_t	tag,
				v;

	if (*pos >= n)
		return 0;
	if (!wire_varint(p, n, pos, 5, &tag))
		return -1;
	f->number = (uint32_t) (tag >> 3);
	f->wire_type = (unsigned) (tag & 7);
	f->data = NULL;
	f->len = 0;
	switch (f->wire_type)
	{
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			return wire_varint(p, n, pos, 10, &v) ? 1 : -1;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
			if (n - *pos < 8)
				return -1;
			*pos += 8;
			return 1;
		case PROTOBUF_C_WIRE_TYPE_32BIT:
			if (n - *pos < 4)
				return -1;
			*pos += 4;
			return 1;
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
			if (!wire_varint(p, n, pos, 5, &v) || v > n - *pos)
				return -1;
			f->data = p + *pos;
			f->len = (size_t) v;
			*pos += (size_t) v;
			return 1;
	}
	return -1;
}

/*
 * s[n] for an error message: printable ASCII as it is, any other byte as
 * \xNN, so the message is valid in every server encoding; only the last
 * TEXT_SHOW_BYTES bytes ("..." before them when cut).
 */
static void
escape_text(char *out, size_t outlen, const uint8_t *s, size_t n)
{
	size_t		o = 0;
	size_t		start = n > TEXT_SHOW_BYTES ? n - TEXT_SHOW_BYTES : 0;

	if (outlen == 0)
		return;
	if (start > 0 && outlen > 4)
	{
		memcpy(out, "...", 3);
		o = 3;
	}
	for (size_t i = start; i < n && o + 5 < outlen; i++)
	{
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			out[o++] = (char) s[i];
		else
			o += (size_t) snprintf(out + o, outlen - o, "\\x%02x", s[i]);
	}
	out[o] = '\0';
}

/* "0xe0 0x80": the bytes s[len] in hex */
static void
hex_bytes(char *out, size_t outlen, const uint8_t *s, size_t len)
{
	size_t		o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && i < 4 && o + 6 < outlen; i++)
		o += (size_t) snprintf(out + o, outlen - o, "%s0x%02x", i ? " " : "", s[i]);
}

static PgfStatus
check_text(const char *path, const uint8_t *s, size_t n, char *err, size_t errlen)
{
	size_t		at = 0,
				len = 0;
	char		bytes[32],
				before[4 * TEXT_SHOW_BYTES + 16] = "";

	switch (pgf_utf8_check(s, n, &at, &len))
	{
		case PGF_UTF8_OK:
			return PGF_OK;
		case PGF_UTF8_NUL:
			return fail(err, errlen, PGF_ERR_HEADER,
						"%s contains a NUL byte (at offset %zu)", path, at);
		case PGF_UTF8_TRUNCATED:
			hex_bytes(bytes, sizeof(bytes), s + at, len);
			return fail(err, errlen, PGF_ERR_HEADER,
						"%s is not valid UTF-8 (truncated sequence %s at offset %zu, the end of the string)",
						path, bytes, at);
		case PGF_UTF8_BAD:
			break;
	}
	hex_bytes(bytes, sizeof(bytes), s + at, len);
	if (at > 0)
	{
		char		shown[4 * TEXT_SHOW_BYTES + 8];

		escape_text(shown, sizeof(shown), s, at);
		snprintf(before, sizeof(before), ", after \"%s\"", shown);
	}
	return fail(err, errlen, PGF_ERR_HEADER,
				"%s is not valid UTF-8 (byte%s %s at offset %zu%s)",
				path, len > 1 ? "s" : "", bytes, at, before);
}

/* protoc-c's map<K, V> entry message: "...Entry" with key = 1, value = 2 */
static bool
is_map_entry(const ProtobufCMessageDescriptor *desc)
{
	size_t		len = strlen(desc->short_name);

	return desc->n_fields == 2 && len > 5 &&
		strcmp(desc->short_name + len - 5, "Entry") == 0 &&
		desc->fields[0].id == 1 && strcmp(desc->fields[0].name, "key") == 0 &&
		desc->fields[1].id == 2 && strcmp(desc->fields[1].name, "value") == 0;
}

static PgfStatus check_message_text(const ProtobufCMessageDescriptor *desc,
									const uint8_t *p, size_t n, char *path,
									size_t plen, int depth, char *err, size_t errlen);

/*
 * A map entry, named by its key: the key (the last one on the wire, as
 * protobuf-c keeps) first, then metadata["key"] value.
 */
static PgfStatus
check_map_entry_text(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n,
					 char *path, size_t plen, uint32_t entry, int depth,
					 char *err, size_t errlen)
{
	const ProtobufCFieldDescriptor *key_field = &desc->fields[0];
	const uint8_t *key = (const uint8_t *) "";
	size_t		key_len = 0,
				pos = 0;
	WireField	f;
	int			r;
	char		shown[4 * TEXT_SHOW_BYTES + 8];
	PgfStatus	status;

	while ((r = wire_next(p, n, &pos, &f)) > 0)
		if (f.number == key_field->id && f.data)
		{
			if (key_field->type == PROTOBUF_C_TYPE_STRING)
			{
				snprintf(path + plen, TEXT_PATH_LEN - plen, " key (entry %u)", entry);
				status = check_text(path, f.data, f.len, err, errlen);
				if (status != PGF_OK)
					return status;
			}
			key = f.data;
			key_len = f.len;
		}
	if (r < 0)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the header does not decode (in %s)", path);
	if (key_field->type == PROTOBUF_C_TYPE_STRING)
	{
		escape_text(shown, sizeof(shown), key, key_len);
		snprintf(path + plen, TEXT_PATH_LEN - plen, "[\"%s\"]", shown);
	}
	else
		snprintf(path + plen, TEXT_PATH_LEN - plen, "[%u]", entry);
	return check_message_text(desc, p, n, path, strlen(path), depth + 1, err, errlen);
}

/* Every string in the message desc encoded in p[n]; path names it. */
static PgfStatus
check_message_text(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n,
				   char *path, size_t plen, int depth, char *err, size_t errlen)
{
	uint32_t	counts[TEXT_MAX_COUNTED] = {0};
	bool		map_entry = is_map_entry(desc);
	size_t		pos = 0;
	WireField	f;
	int			r;

	if (depth > TEXT_MAX_DEPTH)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the header nests messages too deeply (at %s)", path);
	while ((r = wire_next(p, n, &pos, &f)) > 0)
	{
		const ProtobufCFieldDescriptor *field;
		size_t		index,
					len;
		uint32_t	item = 0;
		PgfStatus	status;

		if (f.data == NULL)
			continue;
		field = protobuf_c_message_descriptor_get_field(desc, f.number);
		if (field == NULL ||
			(field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_MESSAGE))
			continue;
		if (map_entry && field->id == 1)
			continue;			/* the key: checked and shown by the caller */
		index = (size_t) (field - desc->fields);
		if (field->label == PROTOBUF_C_LABEL_REPEATED && index < TEXT_MAX_COUNTED)
			item = counts[index]++;
		snprintf(path + plen, TEXT_PATH_LEN - plen, "%s%s",
				 plen == 0 ? "" : map_entry ? " " : ".", field->name);
		len = strlen(path);
		if (field->label == PROTOBUF_C_LABEL_REPEATED &&
			!(field->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(field->descriptor)))
		{
			if (index < TEXT_MAX_COUNTED)
				snprintf(path + len, TEXT_PATH_LEN - len, "[%u]", item);
			else
				snprintf(path + len, TEXT_PATH_LEN - len, "[]");
			len = strlen(path);
		}
		if (field->type == PROTOBUF_C_TYPE_STRING)
			status = check_text(path, f.data, f.len, err, errlen);
		else if (is_map_entry(field->descriptor))
			status = check_map_entry_text(field->descriptor, f.data, f.len, path, len,
										  item, depth, err, errlen);
		else
			status = check_message_text(field->descriptor, f.data, f.len, path, len,
										depth + 1, err, errlen);
		if (status != PGF_OK)
			return status;
		path[plen] = '\0';
	}
	if (r < 0)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the header does not decode (in %s)", plen ? path : "ModelHeader");
	return PGF_OK;
}

static PgfStatus
check_header_text(const uint8_t *header, size_t len, char *err, size_t errlen)
{
	char		path[TEXT_PATH_LEN] = "";

	return check_message_text(&pgformer__model_header__descriptor, header, len, path, 0,
							  0, err, errlen);
}

PgfStatus
pgf_open(PgfModel *m, const void *bytes, size_t size, unsigned flags,
		 const ProtobufCAllocator *allocator, char *err, size_t errlen)
{
	const uint8_t *p = bytes;
	uint32_t	hlen;
	size_t		doff;
	Pgformer__ModelHeader *h;
	PgfStatus	status;

	memset(m, 0, sizeof(*m));
	if (err && errlen > 0)
		err[0] = '\0';
	status = pgf_read_preamble(bytes, size, &hlen, err, errlen);
	if (status != PGF_OK)
		return status;
	doff = pgf_data_offset(hlen);
	if (doff > size)
		return fail(err, errlen, PGF_ERR_TRUNCATED,
					"file is truncated: the header needs %zu bytes but the file has %zu",
					doff, size);
	for (size_t i = PGF_PREAMBLE_LEN + hlen; i < doff; i++)
		if (p[i] != 0)
			return fail(err, errlen, PGF_ERR_HEADER,
						"the padding after the header is not zero");

	h = pgformer__model_header__unpack((ProtobufCAllocator *) allocator, hlen,
									   p + PGF_PREAMBLE_LEN);
	if (h == NULL)
		return fail(err, errlen, PGF_ERR_HEADER,
					"the %u-byte header does not decode as a ModelHeader", hlen);
	m->bytes = p;
	m->size = size;
	m->header = h;
	m->allocator = allocator;
	m->data = p + doff;
	m->data_size = size - doff;

	/* first, so that every message below may quote the header's strings */
	status = check_header_text(p + PGF_PREAMBLE_LEN, hlen, err, errlen);
	if (status != PGF_OK)
		goto error;

	if (h->data_size > m->data_size)
	{
		status = fail(err, errlen, PGF_ERR_TRUNCATED,
					  "file is truncated: the header declares a %llu-byte data section but %zu bytes follow it",
					  (unsigned long long) h->data_size, m->data_size);
		goto error;
	}
	if (h->data_size < m->data_size)
	{
		status = fail(err, errlen, PGF_ERR_HEADER,
					  "the file has %zu bytes after the declared %llu-byte data section",
					  m->data_size - (size_t) h->data_size,
					  (unsigned long long) h->data_size);
		goto error;
	}
	if (h->architecture == NULL || h->architecture[0] == '\0')
	{
		status = fail(err, errlen, PGF_ERR_HEADER, "the header names no architecture");
		goto error;
	}

	if (h->n_tensors > 0)
	{
		if (h->n_tensors > (size_t) INT32_MAX / 2)
		{
			status = fail(err, errlen, PGF_ERR_HEADER, "the header lists too many tensors");
			goto error;
		}
		m->tensors = alloc_bytes(allocator, sizeof(PgfTensor) * h->n_tensors);
		if (m->tensors == NULL)
		{
			status = fail(err, errlen, PGF_ERR_NOMEM, "out of memory reading the tensor index");
			goto error;
		}
	}
	m->n_tensors = (int) h->n_tensors;
	for (int i = 0; i < m->n_tensors; i++)
	{
		status = check_tensor(h->tensors[i], m->data, m->data_size,
							  &m->tensors[i], err, errlen);
		if (status != PGF_OK)
			goto error;
	}
	qsort(m->tensors, m->n_tensors, sizeof(PgfTensor), compare_tensor_names);
	for (int i = 1; i < m->n_tensors; i++)
		if (strcmp(m->tensors[i].name, m->tensors[i - 1].name) == 0)
		{
			status = fail(err, errlen, PGF_ERR_TENSOR,
						  "tensor \"%s\" appears twice", m->tensors[i].name);
			goto error;
		}
	status = check_overlaps(m, err, errlen);
	if (status != PGF_OK)
		goto error;
	status = check_items(m, (flags & PGF_VERIFY_DATA) != 0, err, errlen);
	if (status != PGF_OK)
		goto error;

	if (flags & PGF_VERIFY_DATA)
	{
		uint32_t	crc = pgf_crc32(0, m->data, m->data_size);

		if (crc != h->data_crc32)
		{
			status = fail(err, errlen, PGF_ERR_CHECKSUM,
						  "data section checksum is %08x but the header records %08x: the file is corrupted",
						  crc, h->data_crc32);
			goto error;
		}
	}
	return PGF_OK;

error:
	pgf_close(m);
	return status;
}

void
pgf_close(PgfModel *m)
{
	if (m->header)
		pgformer__model_header__free_unpacked(m->header,
											  (ProtobufCAllocator *) m->allocator);
	free_bytes(m->allocator, m->tensors);
	memset(m, 0, sizeof(*m));
}

const PgfTensor *
pgf_find(const PgfModel *m, const char *name)
{
	int			lo = 0,
				hi = m->n_tensors - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, m->tensors[mid].name);

		if (c == 0)
			return &m->tensors[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

PgfMatrix
pgf_tensor_matrix(const PgfTensor *t)
{
	PgfMatrix	w;

	w.rows = t->ndim > 0 ? (int) t->shape[0] : 1;
	w.cols = (int) (t->numel / w.rows);
	w.dtype = t->dtype;
	w.data = t->data;
	w.scales = t->scales;
	w.quant_block = t->quant_block;
	return w;
}

/* ---- writer ---------------------------------------------------------------- */

void
pgf_writer_init(PgfWriter *w)
{
	memset(w, 0, sizeof(*w));
	pgformer__model_header__init(&w->header);
}

int
pgf_writer_add(PgfWriter *w, const char *name, PgfDType dtype,
			   const int64_t *shape, int ndim, const void *data)
{
	Pgformer__Tensor *t;
	size_t		esize = pgf_dtype_size(dtype);
	size_t		numel = 1;
	size_t		offset;

	if (esize == 0 || dtype == PGF_DTYPE_Q8 || ndim < 0 || ndim > PGF_MAX_DIMS)
		return -1;
	for (int i = 0; i < ndim; i++)
		numel *= (size_t) shape[i];
	if (w->n_tensors == w->cap_tensors)
	{
		int			cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
		Pgformer__Tensor **grown = realloc(w->tensors, sizeof(*grown) * cap);

		if (grown == NULL)
			return -1;
		w->tensors = grown;
		w->cap_tensors = cap;
	}
	offset = (w->data_size + PGF_ALIGN - 1) & ~(size_t) (PGF_ALIGN - 1);
	if (offset + numel * esize > w->data_cap)
	{
		size_t		cap = w->data_cap ? w->data_cap : 4096;
		uint8_t    *grown;

		while (cap < offset + numel * esize)
			cap *= 2;
		grown = realloc(w->data, cap);
		if (grown == NULL)
			return -1;
		w->data = grown;
		w->data_cap = cap;
	}
	memset(w->data + w->data_size, 0, offset - w->data_size);
	memcpy(w->data + offset, data, numel * esize);
	w->data_size = offset + numel * esize;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -1;
	pgformer__tensor__init(t);
	t->name = strdup(name);
	t->n_shape = ndim;
	t->shape = calloc(ndim > 0 ? ndim : 1, sizeof(uint64_t));
	if (t->name == NULL || t->shape == NULL)
	{
		free(t->name);
		free(t->shape);
		free(t);
		return -1;
	}
	for (int i = 0; i < ndim; i++)
		t->shape[i] = (uint64_t) shape[i];
	t->dtype = (Pgformer__DType) dtype;
	t->offset = offset;
	t->nbytes = numel * esize;
	w->tensors[w->n_tensors++] = t;
	return 0;
}

int
pgf_writer_finish(PgfWriter *w, uint8_t **out, size_t *out_len)
{
	size_t		hlen;
	size_t		doff;
	uint8_t    *buf;

	w->header.n_tensors = w->n_tensors;
	w->header.tensors = w->tensors;
	w->header.data_size = w->data_size;
	w->header.data_crc32 = pgf_crc32(0, w->data, w->data_size);
	hlen = pgformer__model_header__get_packed_size(&w->header);
	if (hlen == 0 || hlen > PGF_MAX_HEADER_LEN)
		return -1;
	doff = pgf_data_offset((uint32_t) hlen);
	buf = calloc(1, doff + w->data_size);
	if (buf == NULL)
		return -1;
	memcpy(buf, PGF_MAGIC, PGF_MAGIC_LEN);
	write_le32(buf + 8, PGF_FORMAT_VERSION);
	write_le32(buf + 12, (uint32_t) hlen);
	pgformer__model_header__pack(&w->header, buf + PGF_PREAMBLE_LEN);
	if (w->data_size)
		memcpy(buf + doff, w->data, w->data_size);
	*out = buf;
	*out_len = doff + w->data_size;
	return 0;
}

void
pgf_writer_free(PgfWriter *w)
{
	for (int i = 0; i < w->n_tensors; i++)
	{
		free(w->tensors[i]->name);
		free(w->tensors[i]->shape);
		free(w->tensors[i]);
	}
	free(w->tensors);
	free(w->data);
	memset(w, 0, sizeof(*w));
}
