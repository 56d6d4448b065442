/* SPDX-License-Identifier: Apache-2.0 */
/* Codec throughput: edist (edist/term.h) side by side with erl_interface's ei
 * on one deterministic corpus of typical messages.
 *
 * Kinds (each also mixed round-robin into "mixed"):
 *   tuple   {order, Id, Side, Symbol, Qty, Price}   atoms and integers
 *   bin1k   {data, Seq, <<1 KiB>>}
 *   map10   #{10 atom keys => integers / atoms}
 *   list100 [100 integers: small, 32-bit and 64-bit bignum forms]
 *
 * Same work on both sides:
 * - encode: the same calls produce the same bytes (checked at start-up) into
 *   a reused buffer: an edist_buf reset per message vs. a preallocated flat
 *   buffer for ei (its fastest path, no bounds checks); ei_x_* is a second
 *   ei row.
 * - decode: a generic walk that visits every node and extracts every value
 *   into C variables: one edist_dec_next per node (atoms and binaries as
 *   views into the input: edist's zero-copy design) vs. ei_get_type +
 *   ei_decode_* (atoms and binaries copied, as ei requires). Both walks must
 *   yield identical values (checked at start-up).
 * Every message of the corpus is also byte-identical to OTP 25's
 * term_to_binary(T, [{minor_version, 2}]) (checked once with erl).
 * One iteration processes every message of a kind once; items = messages,
 * so ns per term = 1e9 / items_per_second. scripts/bench-codec.sh runs it
 * and prints the table. */

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ei.h>

#include "edist/term.h"

namespace {

/* ---- corpus ------------------------------------------------------------ */

struct AtomText {
    const char *ptr;
    uint32_t len;
};

constexpr AtomText atom_text(const char *s, uint32_t n) { return {s, n}; }
#define ATOM_LIT(s) atom_text(s, sizeof(s) - 1)

struct OrderMsg { /* {order, Id, Side, Symbol, Qty, Price} */
    int64_t id;
    AtomText side;
    AtomText symbol;
    int64_t qty;
    int64_t price;
};

constexpr size_t kBinaryBytes = 1024;

struct DataMsg { /* {data, Seq, <<1 KiB>>} */
    int64_t seq;
    const uint8_t *bytes;
    size_t len;
};

constexpr uint32_t kMapPairs = 10;

struct MapValue {
    bool is_atom;
    int64_t integer;
    AtomText atom;
};

struct MapMsg { /* keys are fixed (kMapKeys), values vary */
    MapValue values[kMapPairs];
};

/* Sorted as erts sorts the keys of small maps (atoms by text), so both
 * encoders emit the canonical term_to_binary order. */
const AtomText kMapKeys[kMapPairs] = {
    ATOM_LIT("count"), ATOM_LIT("flags"), ATOM_LIT("id"),
    ATOM_LIT("name"),  ATOM_LIT("node"),  ATOM_LIT("price"),
    ATOM_LIT("qty"),   ATOM_LIT("side"),  ATOM_LIT("status"),
    ATOM_LIT("ts"),
};

constexpr uint32_t kListInts = 100;

struct ListMsg {
    int64_t values[kListInts];
};

enum class Kind : uint8_t { Tuple, Bin1k, Map10, List100 };

struct AnyMsg {
    Kind kind;
    const void *msg;
};

constexpr size_t kMessagesPerKind = 64;

/* Deterministic pseudo-random numbers (xorshift64*). */
struct Rng {
    uint64_t state = 0x9E3779B97F4A7C15ull;
    uint64_t next()
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1Dull;
    }
    uint64_t below(uint64_t n) { return next() % n; }
};

/* ei_encode_long writes INTEGER_EXT only for |v| < 2^27 and SMALL_BIG_EXT
 * above, while erts (and edist) use INTEGER_EXT up to 32 bits. Values in
 * 2^27 <= |v| < 2^31 would make the two encoders' bytes differ, so the corpus
 * draws "medium" integers below 2^27 and "large" ones at or above 2^32. */
int64_t medium_int(Rng &r)
{
    int64_t v = (int64_t)r.below(1u << 27);
    return (r.next() & 1) ? -v : v;
}

int64_t large_int(Rng &r)
{
    int64_t v = (int64_t)((1ull << 32) + r.below(1ull << 61));
    return (r.next() & 1) ? -v : v;
}

struct Corpus {
    std::vector<OrderMsg> orders;
    std::vector<DataMsg> datas;
    std::vector<MapMsg> maps;
    std::vector<ListMsg> lists;
    std::vector<uint8_t> binary_bytes;
    std::vector<AnyMsg> mixed;

    void build()
    {
        static const AtomText sides[] = {ATOM_LIT("buy"), ATOM_LIT("sell")};
        static const AtomText symbols[] = {
            ATOM_LIT("AAPL"), ATOM_LIT("MSFT"), ATOM_LIT("GOOG"),
            ATOM_LIT("AMZN"), ATOM_LIT("NVDA"), ATOM_LIT("TSLA")};
        static const AtomText names[] = {
            ATOM_LIT("alpha"), ATOM_LIT("bravo"), ATOM_LIT("charlie"),
            ATOM_LIT("delta")};
        static const AtomText statuses[] = {
            ATOM_LIT("open"), ATOM_LIT("filled"), ATOM_LIT("cancelled")};
        static const AtomText nodes[] = {
            ATOM_LIT("gw@host1"), ATOM_LIT("gw@host2"),
            ATOM_LIT("matcher@host3")};
        Rng r;
        for (size_t i = 0; i < kMessagesPerKind; i++) {
            OrderMsg o;
            o.id = 12345 + (int64_t)i;
            o.side = sides[r.below(2)];
            o.symbol = symbols[r.below(6)];
            o.qty = (int64_t)r.below(256);               /* SMALL_INTEGER */
            o.price = 100000 + (int64_t)r.below(2000000); /* INTEGER */
            orders.push_back(o);
        }
        binary_bytes.resize(kMessagesPerKind * kBinaryBytes);
        for (uint8_t &b : binary_bytes)
            b = (uint8_t)r.next();
        for (size_t i = 0; i < kMessagesPerKind; i++)
            datas.push_back(DataMsg{(int64_t)(1000 + i),
                                    binary_bytes.data() + i * kBinaryBytes,
                                    kBinaryBytes});
        for (size_t i = 0; i < kMessagesPerKind; i++) {
            MapMsg m;
            auto integer = [](int64_t v) { return MapValue{false, v, {}}; };
            auto atom = [](AtomText a) { return MapValue{true, 0, a}; };
            m.values[0] = integer((int64_t)r.below(200));          /* count */
            m.values[1] = integer((int64_t)r.below(65536));        /* flags */
            m.values[2] = integer(500000 + (int64_t)i);            /* id */
            m.values[3] = atom(names[r.below(4)]);                 /* name */
            m.values[4] = atom(nodes[r.below(3)]);                 /* node */
            m.values[5] = integer(medium_int(r));                  /* price */
            m.values[6] = integer((int64_t)r.below(256));          /* qty */
            m.values[7] = atom(sides[r.below(2)]);                 /* side */
            m.values[8] = atom(statuses[r.below(3)]);              /* status */
            m.values[9] = integer(1700000000000 + (int64_t)r.below(1u << 30)); /* ts */
            maps.push_back(m);
        }
        for (size_t i = 0; i < kMessagesPerKind; i++) {
            ListMsg l;
            for (uint32_t j = 0; j < kListInts; j++) {
                switch (r.below(4)) {
                case 0:
                case 1: l.values[j] = (int64_t)r.below(256); break;
                case 2: l.values[j] = medium_int(r); break;
                default: l.values[j] = large_int(r); break;
                }
            }
            lists.push_back(l);
        }
        for (size_t i = 0; i < kMessagesPerKind; i++) {
            mixed.push_back(AnyMsg{Kind::Tuple, &orders[i]});
            mixed.push_back(AnyMsg{Kind::Bin1k, &datas[i]});
            mixed.push_back(AnyMsg{Kind::Map10, &maps[i]});
            mixed.push_back(AnyMsg{Kind::List100, &lists[i]});
        }
    }
};

/* ---- encoders ------------------------------------------------------------
 * Each side is a class with encode(const Msg &) returning 0 or an error and
 * bytes() / size() of the last result. Errors are checked once per message:
 * edist_buf errors are sticky by design; ei's calls are OR-ed. */

class EdistEncoder {
public:
    EdistEncoder()
    {
        edist_buf_init(&buf_);
        (void)edist_buf_reserve(&buf_, 4 * kBinaryBytes);
    }
    ~EdistEncoder() { edist_buf_free(&buf_); }
    EdistEncoder(const EdistEncoder &) = delete;
    EdistEncoder &operator=(const EdistEncoder &) = delete;

    const uint8_t *bytes() const { return buf_.data; }
    size_t size() const { return buf_.len; }

    int encode(const OrderMsg &m)
    {
        edist_buf *b = &buf_;
        edist_buf_reset(b);
        edist_enc_version(b);
        edist_enc_tuple(b, 6);
        edist_enc_atom(b, "order", 5);
        edist_enc_int(b, m.id);
        edist_enc_atom(b, m.side.ptr, m.side.len);
        edist_enc_atom(b, m.symbol.ptr, m.symbol.len);
        edist_enc_int(b, m.qty);
        edist_enc_int(b, m.price);
        return edist_buf_error(b);
    }
    int encode(const DataMsg &m)
    {
        edist_buf *b = &buf_;
        edist_buf_reset(b);
        edist_enc_version(b);
        edist_enc_tuple(b, 3);
        edist_enc_atom(b, "data", 4);
        edist_enc_int(b, m.seq);
        edist_enc_binary(b, m.bytes, m.len);
        return edist_buf_error(b);
    }
    int encode(const MapMsg &m)
    {
        edist_buf *b = &buf_;
        edist_buf_reset(b);
        edist_enc_version(b);
        edist_enc_map(b, kMapPairs);
        for (uint32_t i = 0; i < kMapPairs; i++) {
            edist_enc_atom(b, kMapKeys[i].ptr, kMapKeys[i].len);
            const MapValue &v = m.values[i];
            if (v.is_atom)
                edist_enc_atom(b, v.atom.ptr, v.atom.len);
            else
                edist_enc_int(b, v.integer);
        }
        return edist_buf_error(b);
    }
    int encode(const ListMsg &m)
    {
        edist_buf *b = &buf_;
        edist_buf_reset(b);
        edist_enc_version(b);
        edist_enc_list(b, kListInts);
        for (uint32_t i = 0; i < kListInts; i++)
            edist_enc_int(b, m.values[i]);
        edist_enc_nil(b);
        return edist_buf_error(b);
    }

private:
    edist_buf buf_;
};

/* Every atom in the corpus is ASCII, and ei's cheapest atom encoder is the
 * one told so (a plain ASCII check and memcpy; the UTF-8 check costs ~10%
 * more instructions, latin-1 input is converted byte by byte). Both write
 * SMALL_ATOM_UTF8_EXT, as edist_enc_atom does. */
constexpr erlang_char_encoding kEiAtomFrom = ERLANG_ASCII;

/* ei into a preallocated flat buffer: ei's fastest encode path. */
class EiEncoder {
public:
    EiEncoder() : buf_(4 * kBinaryBytes) {}

    const uint8_t *bytes() const
    {
        return reinterpret_cast<const uint8_t *>(buf_.data());
    }
    size_t size() const { return (size_t)len_; }

    int encode(const OrderMsg &m)
    {
        char *b = buf_.data();
        int i = 0;
        int r = ei_encode_version(b, &i);
        r |= ei_encode_tuple_header(b, &i, 6);
        r |= ei_encode_atom_len_as(b, &i, "order", 5, kEiAtomFrom, ERLANG_UTF8);
        r |= ei_encode_long(b, &i, m.id);
        r |= ei_encode_atom_len_as(b, &i, m.side.ptr, (int)m.side.len,
                                   kEiAtomFrom, ERLANG_UTF8);
        r |= ei_encode_atom_len_as(b, &i, m.symbol.ptr, (int)m.symbol.len,
                                   kEiAtomFrom, ERLANG_UTF8);
        r |= ei_encode_long(b, &i, m.qty);
        r |= ei_encode_long(b, &i, m.price);
        len_ = i;
        return r;
    }
    int encode(const DataMsg &m)
    {
        char *b = buf_.data();
        int i = 0;
        int r = ei_encode_version(b, &i);
        r |= ei_encode_tuple_header(b, &i, 3);
        r |= ei_encode_atom_len_as(b, &i, "data", 4, kEiAtomFrom, ERLANG_UTF8);
        r |= ei_encode_long(b, &i, m.seq);
        r |= ei_encode_binary(b, &i, m.bytes, (long)m.len);
        len_ = i;
        return r;
    }
    int encode(const MapMsg &m)
    {
        char *b = buf_.data();
        int i = 0;
        int r = ei_encode_version(b, &i);
        r |= ei_encode_map_header(b, &i, kMapPairs);
        for (uint32_t k = 0; k < kMapPairs; k++) {
            r |= ei_encode_atom_len_as(b, &i, kMapKeys[k].ptr,
                                       (int)kMapKeys[k].len, kEiAtomFrom,
                                       ERLANG_UTF8);
            const MapValue &v = m.values[k];
            if (v.is_atom)
                r |= ei_encode_atom_len_as(b, &i, v.atom.ptr, (int)v.atom.len,
                                           kEiAtomFrom, ERLANG_UTF8);
            else
                r |= ei_encode_long(b, &i, v.integer);
        }
        len_ = i;
        return r;
    }
    int encode(const ListMsg &m)
    {
        char *b = buf_.data();
        int i = 0;
        int r = ei_encode_version(b, &i);
        r |= ei_encode_list_header(b, &i, kListInts);
        for (uint32_t k = 0; k < kListInts; k++)
            r |= ei_encode_long(b, &i, m.values[k]);
        r |= ei_encode_empty_list(b, &i);
        len_ = i;
        return r;
    }

private:
    std::vector<char> buf_;
    int len_ = 0;
};

/* ei_x_*: ei's growable buffer (each call sizes, then encodes). */
class EiXEncoder {
public:
    EiXEncoder() { ei_x_new(&x_); }
    ~EiXEncoder() { ei_x_free(&x_); }
    EiXEncoder(const EiXEncoder &) = delete;
    EiXEncoder &operator=(const EiXEncoder &) = delete;

    const uint8_t *bytes() const
    {
        return reinterpret_cast<const uint8_t *>(x_.buff);
    }
    size_t size() const { return (size_t)x_.index; }

    int encode(const OrderMsg &m)
    {
        x_.index = 0; /* reuse the memory, as edist_buf_reset does */
        int r = ei_x_encode_version(&x_);
        r |= ei_x_encode_tuple_header(&x_, 6);
        r |= ei_x_encode_atom_len_as(&x_, "order", 5, kEiAtomFrom, ERLANG_UTF8);
        r |= ei_x_encode_long(&x_, m.id);
        r |= ei_x_encode_atom_len_as(&x_, m.side.ptr, (int)m.side.len,
                                     kEiAtomFrom, ERLANG_UTF8);
        r |= ei_x_encode_atom_len_as(&x_, m.symbol.ptr, (int)m.symbol.len,
                                     kEiAtomFrom, ERLANG_UTF8);
        r |= ei_x_encode_long(&x_, m.qty);
        r |= ei_x_encode_long(&x_, m.price);
        return r;
    }
    int encode(const DataMsg &m)
    {
        x_.index = 0;
        int r = ei_x_encode_version(&x_);
        r |= ei_x_encode_tuple_header(&x_, 3);
        r |= ei_x_encode_atom_len_as(&x_, "data", 4, kEiAtomFrom, ERLANG_UTF8);
        r |= ei_x_encode_long(&x_, m.seq);
        r |= ei_x_encode_binary(&x_, m.bytes, (int)m.len);
        return r;
    }
    int encode(const MapMsg &m)
    {
        x_.index = 0;
        int r = ei_x_encode_version(&x_);
        r |= ei_x_encode_map_header(&x_, kMapPairs);
        for (uint32_t k = 0; k < kMapPairs; k++) {
            r |= ei_x_encode_atom_len_as(&x_, kMapKeys[k].ptr,
                                         (int)kMapKeys[k].len, kEiAtomFrom,
                                         ERLANG_UTF8);
            const MapValue &v = m.values[k];
            if (v.is_atom)
                r |= ei_x_encode_atom_len_as(&x_, v.atom.ptr, (int)v.atom.len,
                                             kEiAtomFrom, ERLANG_UTF8);
            else
                r |= ei_x_encode_long(&x_, v.integer);
        }
        return r;
    }
    int encode(const ListMsg &m)
    {
        x_.index = 0;
        int r = ei_x_encode_version(&x_);
        r |= ei_x_encode_list_header(&x_, kListInts);
        for (uint32_t k = 0; k < kListInts; k++)
            r |= ei_x_encode_long(&x_, m.values[k]);
        r |= ei_x_encode_empty_list(&x_);
        return r;
    }

private:
    ei_x_buff x_;
};

template <class Encoder>
int encode_any(Encoder &e, const AnyMsg &m)
{
    switch (m.kind) {
    case Kind::Tuple: return e.encode(*static_cast<const OrderMsg *>(m.msg));
    case Kind::Bin1k: return e.encode(*static_cast<const DataMsg *>(m.msg));
    case Kind::Map10: return e.encode(*static_cast<const MapMsg *>(m.msg));
    case Kind::List100: return e.encode(*static_cast<const ListMsg *>(m.msg));
    }
    return -1;
}

template <class Encoder> int encode_msg(Encoder &e, const AnyMsg &m)
{
    return encode_any(e, m);
}
template <class Encoder, class Msg> int encode_msg(Encoder &e, const Msg &m)
{
    return e.encode(m);
}

/* ---- decoders: sinks -----------------------------------------------------
 * The walk hands every extracted value to a sink. HashSink (benchmarks)
 * folds each value into one word so nothing can be optimised away; it reads
 * one byte of each atom and binary so both sides touch their result. The
 * RecordSink (start-up check) keeps everything as text for comparison. */

struct HashSink {
    uint64_t acc = 0;
    void integer(int64_t v) { acc += (uint64_t)v; }
    void real(double v)
    {
        uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        acc ^= bits;
    }
    void atom(const char *p, size_t len)
    {
        acc += len + (len ? (uint8_t)p[0] : 0u);
    }
    void binary(const uint8_t *p, size_t len)
    {
        acc += len + (len ? p[len - 1] : 0u);
    }
    void string(const uint8_t *p, size_t len) { binary(p, len); }
    void tuple(uint64_t n) { acc += n; }
    void map(uint64_t n) { acc += n << 1; }
    void list(uint64_t n) { acc += n << 2; }
    void nil() { acc += 3; }
};

struct RecordSink {
    std::vector<std::string> events;
    void add(const char *what, const std::string &v)
    {
        events.push_back(std::string(what) + ":" + v);
    }
    void integer(int64_t v) { add("int", std::to_string(v)); }
    void real(double v)
    {
        char s[40];
        std::snprintf(s, sizeof s, "%a", v);
        add("float", s);
    }
    void atom(const char *p, size_t len) { add("atom", std::string(p, len)); }
    void binary(const uint8_t *p, size_t len)
    {
        add("binary", std::string(reinterpret_cast<const char *>(p), len));
    }
    void string(const uint8_t *p, size_t len)
    {
        add("string", std::string(reinterpret_cast<const char *>(p), len));
    }
    void tuple(uint64_t n) { add("tuple", std::to_string(n)); }
    void map(uint64_t n) { add("map", std::to_string(n)); }
    void list(uint64_t n) { add("list", std::to_string(n)); }
    void nil() { add("nil", ""); }
};

/* ---- walks --------------------------------------------------------------
 * Both walks have the same shape, so the harness costs the same on each
 * side: iterative, with a small stack of "elements left" per open container
 * (a list counts its tail as one more element). */

constexpr int kMaxWalkDepth = 32; /* the corpus nests 2 deep */

struct WalkStack {
    uint64_t left[kMaxWalkDepth];
    int depth = 0;
    uint64_t todo = 1; /* elements left in the innermost container */

    /* Next element to read; false when the whole term has been read. */
    bool next()
    {
        while (todo == 0) {
            if (depth == 0)
                return false;
            todo = left[--depth];
        }
        todo--;
        return true;
    }
    bool open(uint64_t elements)
    {
        if (elements == 0)
            return true;
        if (depth == kMaxWalkDepth)
            return false;
        left[depth++] = todo;
        todo = elements;
        return true;
    }
};

/* edist: one edist_dec_next per node (tag and value in one call). */
template <class Sink> int edist_walk(edist_cursor *c, Sink &s)
{
    WalkStack w;
    while (w.next()) {
        edist_item it;
        int rc = edist_dec_next(c, &it);
        if (rc < 0)
            return rc;
        switch (it.type) {
        case EDIST_TYPE_INTEGER:
            if (it.big)
                return EDIST_ERANGE; /* not in the corpus: ei reads longs */
            s.integer(it.i);
            break;
        case EDIST_TYPE_FLOAT:
            s.real(it.f);
            break;
        case EDIST_TYPE_ATOM:
            s.atom(reinterpret_cast<const char *>(it.bytes), (size_t)it.count);
            break;
        case EDIST_TYPE_TUPLE:
            s.tuple(it.count);
            if (!w.open(it.count))
                return EDIST_EDEPTH;
            break;
        case EDIST_TYPE_MAP:
            s.map(it.count);
            if (!w.open(2 * it.count))
                return EDIST_EDEPTH;
            break;
        case EDIST_TYPE_NIL:
            s.nil();
            break;
        case EDIST_TYPE_LIST:
            if (it.tag == EDIST_TAG_STRING) {
                s.string(it.bytes, (size_t)it.count);
                break;
            }
            s.list(it.count);
            if (!w.open(it.count + 1)) /* elements, then the tail */
                return EDIST_EDEPTH;
            break;
        case EDIST_TYPE_BINARY:
            if (it.last_bits != 8)
                return EDIST_EUNSUPPORTED; /* not in the corpus */
            s.binary(it.bytes, (size_t)it.count);
            break;
        default:
            return EDIST_EUNSUPPORTED; /* not in the corpus */
        }
    }
    return 0;
}

struct EdistDecoder {
    template <class Sink> int decode(const uint8_t *p, size_t len, Sink &s)
    {
        edist_cursor c;
        int rc = edist_cursor_init_ext(&c, p, len, nullptr);
        if (rc < 0)
            return rc;
        rc = edist_walk(&c, s);
        if (rc < 0)
            return rc;
        return edist_cursor_remaining(&c) == 0 ? 0 : -1;
    }
};

/* ei: ei_get_type, then the matching ei_decode_* (atoms and binaries are
 * copied out, as ei requires). */
class EiDecoder {
public:
    EiDecoder() : binary_(4 * kBinaryBytes) {}

    template <class Sink> int decode(const uint8_t *p, size_t len, Sink &s)
    {
        const char *buf = reinterpret_cast<const char *>(p);
        int index = 0, version;
        if (ei_decode_version(buf, &index, &version) < 0)
            return -1;
        if (walk(buf, &index, s) < 0)
            return -1;
        return (size_t)index == len ? 0 : -1;
    }

private:
    template <class Sink> int walk(const char *buf, int *index, Sink &s)
    {
        WalkStack w;
        while (w.next()) {
            int type, size;
            if (ei_get_type(buf, index, &type, &size) < 0)
                return -1;
            switch (type) {
            case ERL_SMALL_INTEGER_EXT:
            case ERL_INTEGER_EXT:
            case ERL_SMALL_BIG_EXT: {
                long v;
                if (ei_decode_long(buf, index, &v) < 0)
                    return -1;
                s.integer(v);
                break;
            }
            case ERL_FLOAT_EXT: {
                double v;
                if (ei_decode_double(buf, index, &v) < 0)
                    return -1;
                s.real(v);
                break;
            }
            case ERL_ATOM_EXT:
                if (ei_decode_atom_as(buf, index, atom_, sizeof atom_,
                                      ERLANG_UTF8, nullptr, nullptr) < 0)
                    return -1;
                s.atom(atom_, (size_t)size); /* size: atom bytes */
                break;
            case ERL_SMALL_TUPLE_EXT:
            case ERL_LARGE_TUPLE_EXT: {
                int arity;
                if (ei_decode_tuple_header(buf, index, &arity) < 0)
                    return -1;
                s.tuple((uint64_t)arity);
                if (!w.open((uint64_t)arity))
                    return -1;
                break;
            }
            case ERL_MAP_EXT: {
                int pairs;
                if (ei_decode_map_header(buf, index, &pairs) < 0)
                    return -1;
                s.map((uint64_t)pairs);
                if (!w.open(2 * (uint64_t)pairs))
                    return -1;
                break;
            }
            case ERL_NIL_EXT: {
                int n;
                if (ei_decode_list_header(buf, index, &n) < 0)
                    return -1;
                s.nil();
                break;
            }
            case ERL_STRING_EXT:
                if ((size_t)size >= binary_.size() ||
                    ei_decode_string(buf, index, binary_.data()) < 0)
                    return -1;
                s.string(reinterpret_cast<const uint8_t *>(binary_.data()),
                         (size_t)size);
                break;
            case ERL_LIST_EXT: {
                int n;
                if (ei_decode_list_header(buf, index, &n) < 0)
                    return -1;
                s.list((uint64_t)n);
                if (!w.open((uint64_t)n + 1)) /* elements, then the tail */
                    return -1;
                break;
            }
            case ERL_BINARY_EXT: {
                long len;
                if ((size_t)size > binary_.size() ||
                    ei_decode_binary(buf, index, binary_.data(), &len) < 0)
                    return -1;
                s.binary(reinterpret_cast<const uint8_t *>(binary_.data()),
                         (size_t)len);
                break;
            }
            default:
                return -1; /* not in the corpus */
            }
        }
        return 0;
    }

    char atom_[MAXATOMLEN_UTF8];
    std::vector<char> binary_;
};

/* ---- encoded corpus (input of the decode benchmarks) ------------------ */

struct EncodedSet {
    std::vector<uint8_t> arena;
    std::vector<std::pair<size_t, size_t>> spans; /* offset, length */
    size_t total_bytes() const { return arena.size(); }
};

Corpus g_corpus;
EncodedSet g_encoded[5]; /* tuple, bin1k, map10, list100, mixed */
const char *const kKindNames[5] = {"tuple", "bin1k", "map10", "list100",
                                   "mixed"};

[[noreturn]] void die(const char *what, size_t msg_index)
{
    std::fprintf(stderr, "edist_bench_codec: start-up check failed: %s "
                         "(message %zu)\n", what, msg_index);
    std::abort();
}

void check_identical(const char *name, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen, size_t msg_index)
{
    if (alen == blen && std::memcmp(a, b, alen) == 0)
        return;
    size_t at = 0;
    while (at < alen && at < blen && a[at] == b[at])
        at++;
    std::fprintf(stderr, "edist_bench_codec: %s: edist %zu bytes, ei %zu "
                         "bytes, first difference at offset %zu\n",
                 name, alen, blen, at);
    die("encoders disagree", msg_index);
}

/* Encode every message with all three encoders (bytes must be identical),
 * decode the bytes with both walkers (values must be identical), and keep
 * the bytes as the decode benchmarks' input. */
template <class Msg>
void prepare(const std::vector<Msg> &msgs, EncodedSet *out, const char *kind)
{
    EdistEncoder ed;
    EiEncoder ei;
    EiXEncoder eix;
    EdistDecoder dd;
    EiDecoder di;
    for (size_t i = 0; i < msgs.size(); i++) {
        if (encode_msg(ed, msgs[i]) != 0)
            die("edist encode failed", i);
        if (encode_msg(ei, msgs[i]) != 0)
            die("ei encode failed", i);
        if (encode_msg(eix, msgs[i]) != 0)
            die("ei_x encode failed", i);
        check_identical(kind, ed.bytes(), ed.size(), ei.bytes(), ei.size(), i);
        check_identical(kind, eix.bytes(), eix.size(), ei.bytes(), ei.size(),
                        i);
        RecordSink rs_edist, rs_ei;
        if (dd.decode(ed.bytes(), ed.size(), rs_edist) != 0)
            die("edist decode failed", i);
        if (di.decode(ed.bytes(), ed.size(), rs_ei) != 0)
            die("ei decode failed", i);
        if (rs_edist.events != rs_ei.events)
            die("decoders extract different values", i);
        out->spans.emplace_back(out->arena.size(), ed.size());
        out->arena.insert(out->arena.end(), ed.bytes(), ed.bytes() + ed.size());
    }
}

/* ---- benchmarks ---------------------------------------------------------- */

/* EDIST_BENCH_ITERATIONS=N fixes every benchmark at N iterations (no
 * calibration runs), so a run under callgrind counts exactly N passes over
 * the corpus: instruction counts per term that machine noise cannot move.
 * The counter items_per_iteration (only then) tells bench/instructions.sh
 * how many terms one pass is. */
int64_t g_fixed_iterations = 0;

void set_items(benchmark::State &state, size_t items_per_iteration,
               size_t bytes_per_iteration)
{
    state.SetItemsProcessed((int64_t)(state.iterations() * items_per_iteration));
    state.SetBytesProcessed((int64_t)(state.iterations() * bytes_per_iteration));
    if (g_fixed_iterations > 0)
        state.counters["items_per_iteration"] = (double)items_per_iteration;
}

template <class Encoder, class Msg>
void bm_encode(benchmark::State &state, const std::vector<Msg> *msgs,
               const EncodedSet *set)
{
    Encoder enc;
    for (auto _ : state) {
        bool failed = false;
        for (const Msg &m : *msgs) {
            if (encode_msg(enc, m) != 0) {
                failed = true;
                break;
            }
            const uint8_t *out = enc.bytes();
            benchmark::DoNotOptimize(out);
            benchmark::ClobberMemory(); /* the bytes count as written */
        }
        if (failed) {
            state.SkipWithError("encode failed");
            break;
        }
    }
    set_items(state, msgs->size(), set->total_bytes());
}

template <class Decoder>
void bm_decode(benchmark::State &state, const EncodedSet *set)
{
    Decoder dec;
    const uint8_t *arena = set->arena.data();
    for (auto _ : state) {
        bool failed = false;
        for (const auto &span : set->spans) {
            HashSink sink;
            if (dec.decode(arena + span.first, span.second, sink) != 0) {
                failed = true;
                break;
            }
            benchmark::DoNotOptimize(sink.acc);
        }
        if (failed) {
            state.SkipWithError("decode failed");
            break;
        }
    }
    set_items(state, set->spans.size(), set->total_bytes());
}

template <class Msg>
void register_kind(const std::vector<Msg> *msgs, const EncodedSet *set,
                   const std::string &kind)
{
    benchmark::internal::Benchmark *b[] = {
        benchmark::RegisterBenchmark(("decode/" + kind + "/edist").c_str(),
                                     bm_decode<EdistDecoder>, set),
        benchmark::RegisterBenchmark(("decode/" + kind + "/ei").c_str(),
                                     bm_decode<EiDecoder>, set),
        benchmark::RegisterBenchmark(("encode/" + kind + "/edist").c_str(),
                                     bm_encode<EdistEncoder, Msg>, msgs, set),
        benchmark::RegisterBenchmark(("encode/" + kind + "/ei").c_str(),
                                     bm_encode<EiEncoder, Msg>, msgs, set),
        benchmark::RegisterBenchmark(("encode/" + kind + "/ei_x").c_str(),
                                     bm_encode<EiXEncoder, Msg>, msgs, set),
    };
    if (g_fixed_iterations > 0)
        for (benchmark::internal::Benchmark *one : b)
            one->Iterations(g_fixed_iterations);
    char ctx[96];
    std::snprintf(ctx, sizeof ctx, "%zu messages, %zu bytes",
                  set->spans.size(), set->total_bytes());
    benchmark::AddCustomContext("corpus_" + kind, ctx);
}

} // namespace

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    ei_init();
    if (const char *n = std::getenv("EDIST_BENCH_ITERATIONS"))
        g_fixed_iterations = std::atoll(n);

    g_corpus.build();
    prepare(g_corpus.orders, &g_encoded[0], kKindNames[0]);
    prepare(g_corpus.datas, &g_encoded[1], kKindNames[1]);
    prepare(g_corpus.maps, &g_encoded[2], kKindNames[2]);
    prepare(g_corpus.lists, &g_encoded[3], kKindNames[3]);
    prepare(g_corpus.mixed, &g_encoded[4], kKindNames[4]);

    register_kind(&g_corpus.mixed, &g_encoded[4], kKindNames[4]);
    register_kind(&g_corpus.orders, &g_encoded[0], kKindNames[0]);
    register_kind(&g_corpus.datas, &g_encoded[1], kKindNames[1]);
    register_kind(&g_corpus.maps, &g_encoded[2], kKindNames[2]);
    register_kind(&g_corpus.lists, &g_encoded[3], kKindNames[3]);

    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
