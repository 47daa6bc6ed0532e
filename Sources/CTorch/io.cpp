// torch.save files through our own restricted unpickler, and TorchScript modules through libtorch.
//
// Why not libtorch's torch::pickle_load: it turns every collections.OrderedDict into None (it expects one only as a
// tensor's backward hooks), so the most common checkpoint of all, torch.save(model.state_dict()), fails to load
// ("Expected GenericDict but got None"); and it reads only the zip format, while older checkpoints (the project's
// EfficientNet-Lite0 .pth among them) use the legacy format.
//
// The unpickler below is a pickle virtual machine for the subset that checkpoints use: protocol 0-5 opcodes for
// None/bool/int/float/str/bytes/tuple/list/dict/set, memo, persistent ids (storages), and REDUCE/NEWOBJ/BUILD.
// REDUCE knows a fixed list of callables (tensor and parameter rebuilders, OrderedDict, torch.Size...); any other
// global is never imported or called: it becomes a placeholder object that keeps its arguments and state, so the
// tensors inside it are still found and everything else is reported as skipped. So loading runs no code at all,
// like torch.load(weights_only=True), and more permissive than it only in ignoring unknown classes.
//
// Formats: zip (PyTorch >= 1.6: archive/data.pkl + archive/data/<key>), read with libtorch's PyTorchStreamReader;
// legacy (magic number, protocol 1001, sys info, the object, the sorted storage keys, then each storage as an
// int64 element count and its bytes).
#include <torch/script.h>
#include <caffe2/serialize/inline_container.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "shim.h"

using namespace ctorch;

namespace {

[[noreturn]] void fail(const std::string &m) { throw std::runtime_error(m); }

// ---- values ----

enum class K { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Object, Tensor, Storage, Mark };

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
    K k;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;          // Str, Bytes, BigInt (little-endian two's complement), Global/Object: "module.name"
    std::vector<Ref> a;     // Tuple/List items, Dict keys, Object: its arguments then its BUILD states
    std::vector<Ref> v;     // Dict values
    at::Tensor t;           // Tensor
    c10::Storage storage;   // Storage
    at::ScalarType dtype = at::kByte;  // Storage: the element type it was saved with
    int64_t numel = 0;      // Storage: elements
    std::unordered_map<std::string, size_t> index;  // Dict: position of each string key
    explicit Obj(K k) : k(k) {}
};

// Every value one load makes, kept until the load ends and then torn down without recursion. A pickle can build a
// reference cycle (a list memoised, fetched back and appended to itself), which shared_ptr alone would leak, and a
// chain 100,000 lists deep, whose recursive destruction would overflow the stack. The arena holds a reference to
// every value; on leaving it clears every value's children first, so no destructor ever recurses into a child.
struct Arena {
    std::vector<Ref> all;
    Arena *outer;
    static thread_local Arena *current;
    Arena() : outer(current) { current = this; }
    ~Arena() {
        current = outer;
        for (auto &r : all) {
            r->a.clear();
            r->v.clear();
        }
    }
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;
};
thread_local Arena *Arena::current = nullptr;

Ref make(K k) {
    auto r = std::make_shared<Obj>(k);
    if (Arena::current) Arena::current->all.push_back(r);
    return r;
}
Ref make_int(int64_t i) { auto r = make(K::Int); r->i = i; return r; }
Ref make_str(std::string s, K k = K::Str) { auto r = make(k); r->s = std::move(s); return r; }
Ref make_bool(bool b) { auto r = make(K::Bool); r->b = b; return r; }
Ref make_seq(K k, std::vector<Ref> items) { auto r = make(k); r->a = std::move(items); return r; }

std::string kind_name(const Obj &o) {
    switch (o.k) {
    case K::None: return "None";
    case K::Bool: return "bool";
    case K::Int: case K::BigInt: return "int";
    case K::Float: return "float";
    case K::Str: return "str";
    case K::Bytes: return "bytes";
    case K::Tuple: return "tuple";
    case K::List: return "list";
    case K::Dict: return "dict";
    case K::Global: return "global " + o.s;
    case K::Object: return "object of class " + o.s;
    case K::Tensor: return "tensor";
    case K::Storage: return "storage";
    case K::Mark: return "mark";
    }
    return "?";
}

// The key of a dict entry as a name part.
std::string key_name(const Obj &k, int depth = 0) {
    if (depth > 256) fail("the checkpoint has a dict key of tuples nested deeper than 256 levels");
    switch (k.k) {
    case K::Str: return k.s;
    case K::Int: return std::to_string(k.i);
    case K::Bool: return k.b ? "True" : "False";
    case K::None: return "None";
    case K::Tuple: {
        std::string r;
        for (size_t j = 0; j < k.a.size(); j++) r += (j ? "_" : "") + key_name(*k.a[j], depth + 1);
        return r;
    }
    default: return "<" + kind_name(k) + ">";
    }
}

// ---- input ----

struct Input {
    virtual ~Input() = default;
    virtual size_t read(char *dst, size_t n) = 0;
    std::string what;  // for messages: "data.pkl", "the file"
    void exact(void *dst, size_t n) {
        if (read(static_cast<char *>(dst), n) != n) fail("the pickle in " + what + " ends early (truncated file?)");
    }
    uint8_t byte() { uint8_t b; exact(&b, 1); return b; }
    template <class T> T le() {
        unsigned char b[sizeof(T)];
        exact(b, sizeof(T));
        uint64_t v = 0;
        for (size_t j = 0; j < sizeof(T); j++) v |= uint64_t(b[j]) << (8 * j);
        return static_cast<T>(v);
    }
    std::string bytes(uint64_t n) {
        if (n > (uint64_t(1) << 40)) fail("the pickle in " + what + " holds an implausible length " + std::to_string(n));
        std::string s;
        // Read in chunks so that a corrupt length fails at the end of the input, not in one huge allocation.
        while (s.size() < n) {
            size_t chunk = std::min<uint64_t>(n - s.size(), 1 << 20);
            size_t old = s.size();
            s.resize(old + chunk);
            exact(&s[old], chunk);
        }
        return s;
    }
    std::string line() {
        std::string s;
        for (;;) {
            char c = static_cast<char>(byte());
            if (c == '\n') return s;
            s += c;
            if (s.size() > 65536) fail("the pickle in " + what + " has an over-long text line");
        }
    }
};

struct MemInput : Input {
    const char *p;
    size_t n, pos = 0;
    MemInput(const char *p, size_t n, std::string w) : p(p), n(n) { what = std::move(w); }
    size_t read(char *dst, size_t k) override {
        size_t m = std::min(k, n - pos);
        std::memcpy(dst, p + pos, m);
        pos += m;
        return m;
    }
};

struct FileInput : Input {
    std::ifstream f;
    FileInput(const std::string &path) : f(path, std::ios::binary) { what = "the file"; }
    size_t read(char *dst, size_t k) override {
        f.read(dst, static_cast<std::streamsize>(k));
        return static_cast<size_t>(f.gcount());
    }
};

// ---- dtypes ----

bool storage_dtype(const std::string &global, at::ScalarType &out) {
    static const std::map<std::string, at::ScalarType> m = {
        {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
        {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
        {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
        {"torch.BoolStorage", at::kBool},     {"torch.UntypedStorage", at::kByte},
    };
    auto it = m.find(global);
    if (it == m.end()) return false;
    out = it->second;
    return true;
}

bool dtype_global(const std::string &global, at::ScalarType &out) {
    static const std::map<std::string, at::ScalarType> m = {
        {"torch.float32", at::kFloat}, {"torch.float", at::kFloat},    {"torch.float64", at::kDouble},
        {"torch.double", at::kDouble}, {"torch.float16", at::kHalf},   {"torch.half", at::kHalf},
        {"torch.bfloat16", at::kBFloat16}, {"torch.int64", at::kLong}, {"torch.long", at::kLong},
        {"torch.int32", at::kInt},     {"torch.int", at::kInt},        {"torch.int16", at::kShort},
        {"torch.short", at::kShort},   {"torch.int8", at::kChar},      {"torch.uint8", at::kByte},
        {"torch.bool", at::kBool},
    };
    auto it = m.find(global);
    if (it == m.end()) return false;
    out = it->second;
    return true;
}

// ---- globals ----

// Whether a global the pickle names is one a plain checkpoint needs: torch's tensor, parameter and storage
// rebuilders, dtypes, torch.Size/device, torch's own layer classes (a pickled nn.Module), collections' and the
// builtins' containers, copyreg's reconstructor, _codecs.encode (protocol-2 bytes), numpy's array and scalar
// reconstructors, and argparse.Namespace (DiT's train.py saves its arguments as one). This unpickler never imports
// or calls any global; but Python's torch.load (without weights_only=True) would, so a file naming any other global
// (os.system, builtins.eval, subprocess.Popen, a user's class...) is not a plain checkpoint and is reported.
bool known_safe_global(const std::string &g) {
    static const std::set<std::string> exact = {
        "torch._tensor._rebuild_from_type", "torch._tensor._rebuild_from_type_v2", "torch.Size", "torch.device",
        "torch.nn.parameter.Parameter", "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
        "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
        "copyreg._reconstructor", "copy_reg._reconstructor", "_codecs.encode",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.ndarray", "numpy.dtype",
        "argparse.Namespace",
    };
    static const std::set<std::string> builtins = {
        "dict", "list", "tuple", "set", "frozenset", "object", "int", "float", "bool", "str", "bytes", "bytearray",
        "complex", "slice", "range",
    };
    if (exact.count(g)) return true;
    at::ScalarType unused;
    if (storage_dtype(g, unused) || dtype_global(g, unused)) return true;
    auto starts = [&](const char *p) { return g.rfind(p, 0) == 0; };
    if (starts("torch._utils._rebuild_")) return true;
    for (const char *b : {"builtins.", "__builtin__."})
        if (starts(b) && builtins.count(g.substr(std::strlen(b)))) return true;
    // numpy >= 1.25 pickles a dtype's class: numpy.dtypes.Float64DType.
    if (starts("numpy.dtypes.") && g.size() > 18 && g.compare(g.size() - 5, 5, "DType") == 0 &&
        g.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == std::string::npos)
        return true;
    // torch.nn.modules.<file>.<Class>: a torch layer class (capitalised), never a function of those files.
    if (starts("torch.nn.modules.")) {
        std::string rest = g.substr(17);
        size_t dot = rest.find('.');
        if (dot != std::string::npos && rest.find('.', dot + 1) == std::string::npos && dot + 1 < rest.size() &&
            std::isupper(static_cast<unsigned char>(rest[dot + 1])) &&
            rest.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == std::string::npos)
            return true;
    }
    return false;
}

// ---- the virtual machine ----

// Where storages come from: a zip archive's records, or the legacy file's trailing data.
struct StorageSource {
    virtual ~StorageSource() = default;
    virtual Ref load(const std::string &key, at::ScalarType dtype, int64_t numel) = 0;
};

struct Unpickler {
    Input &in;
    StorageSource *storages;  // null: persistent ids are an error (the legacy header pickles)
    std::vector<Ref> stack;
    std::vector<size_t> marks;
    std::unordered_map<uint64_t, Ref> memo;

    std::set<std::string> *globals;  // every global the pickle names (module.name), for the caller to judge

    Unpickler(Input &in, StorageSource *s, std::set<std::string> *g) : in(in), storages(s), globals(g) {}

    Ref global(const std::string &name) {
        if (globals) globals->insert(name);
        return make_str(name, K::Global);
    }

    [[noreturn]] void bad(const std::string &m) { fail("the pickle in " + in.what + " " + m); }

    Ref pop() {
        if (stack.empty() || (!marks.empty() && stack.size() <= marks.back())) bad("pops an empty stack (corrupt?)");
        Ref r = stack.back();
        stack.pop_back();
        return r;
    }
    Ref &top() {
        if (stack.empty()) bad("reads an empty stack (corrupt?)");
        return stack.back();
    }
    std::vector<Ref> pop_mark() {
        if (marks.empty()) bad("has no MARK where one is needed (corrupt?)");
        size_t m = marks.back();
        marks.pop_back();
        std::vector<Ref> items(stack.begin() + static_cast<std::ptrdiff_t>(m), stack.end());
        stack.resize(m);
        return items;
    }
    void push(Ref r) { stack.push_back(std::move(r)); }

    static void dict_set(Obj &d, Ref k, Ref v) {
        if (k->k == K::Str) {
            auto it = d.index.find(k->s);
            if (it != d.index.end()) {
                d.v[it->second] = std::move(v);
                return;
            }
            d.index.emplace(k->s, d.a.size());
        } else if (k->k == K::Int) {
            for (size_t j = 0; j < d.a.size(); j++) {
                if (d.a[j]->k == K::Int && d.a[j]->i == k->i) {
                    d.v[j] = std::move(v);
                    return;
                }
            }
        }
        d.a.push_back(std::move(k));
        d.v.push_back(std::move(v));
    }

    void set_items(Ref target, const std::vector<Ref> &items) {
        if (items.size() % 2) bad("has SETITEMS with an odd number of items");
        if (target->k == K::Dict) {
            for (size_t j = 0; j < items.size(); j += 2) dict_set(*target, items[j], items[j + 1]);
        } else if (target->k == K::Object) {
            // dict items of an unknown dict subclass: keep them as the object's state.
            auto d = make(K::Dict);
            for (size_t j = 0; j < items.size(); j += 2) dict_set(*d, items[j], items[j + 1]);
            target->a.push_back(d);
        } else {
            bad("sets items on a " + kind_name(*target));
        }
    }

    void append(Ref target, std::vector<Ref> items) {
        if (target->k == K::List) {
            for (auto &x : items) target->a.push_back(std::move(x));
        } else if (target->k == K::Object) {
            target->a.push_back(make_seq(K::List, std::move(items)));
        } else {
            bad("appends to a " + kind_name(*target));
        }
    }

    Ref persistent_load(Ref pid) {
        if (!storages) bad("has a persistent id where none is expected");
        // ('storage', storage_type, key, location, numel[, view_metadata])
        if (pid->k != K::Tuple || pid->a.size() < 5 || pid->a[0]->k != K::Str || pid->a[0]->s != "storage")
            bad("has a persistent id that is not a storage");
        const Obj &type = *pid->a[1];
        if (type.k != K::Global) bad("has a storage whose type is not a global");
        at::ScalarType dt;
        if (!storage_dtype(type.s, dt))
            fail("storages of type " + type.s + " are not supported (only float, double, half, bfloat16, long, int, "
                 "short, char, byte and bool)");
        const Obj &key = *pid->a[2];
        std::string k = key.k == K::Str ? key.s : key.k == K::Int ? std::to_string(key.i) : "";
        if (k.empty()) bad("has a storage with an invalid key");
        if (pid->a[4]->k != K::Int || pid->a[4]->i < 0) bad("has a storage with an invalid size");
        if (pid->a.size() > 5 && pid->a[5]->k != K::None)
            fail("storage views (PyTorch < 0.4 files) are not supported");
        return storages->load(k, dt, pid->a[4]->i);
    }

    // Builds a tensor over `storage`, checking that the view fits.
    Ref tensor(const Ref &storage, const Ref &offset, const Ref &size, const Ref &stride, at::ScalarType dtype) {
        if (storage->k != K::Storage) bad("rebuilds a tensor from a " + kind_name(*storage) + ", not a storage");
        auto ints = [&](const Ref &r, const char *what) {
            if (r->k != K::Tuple && r->k != K::List) bad(std::string("rebuilds a tensor whose ") + what + " is a " + kind_name(*r));
            std::vector<int64_t> out;
            for (auto &x : r->a) {
                if (x->k != K::Int) bad(std::string("rebuilds a tensor whose ") + what + " holds a " + kind_name(*x));
                out.push_back(x->i);
            }
            return out;
        };
        if (offset->k != K::Int || offset->i < 0) bad("rebuilds a tensor with an invalid storage offset");
        auto sz = ints(size, "size"), st = ints(stride, "stride");
        if (sz.size() != st.size()) bad("rebuilds a tensor whose size and stride differ in length");
        int64_t esize = static_cast<int64_t>(c10::elementSize(dtype));
        int64_t have = static_cast<int64_t>(storage->storage.nbytes()) / esize;
        int64_t need = offset->i + 1;
        bool empty = false;
        for (size_t d = 0; d < sz.size(); d++) {
            if (sz[d] < 0 || st[d] < 0) bad("rebuilds a tensor with a negative size or stride");
            if (sz[d] == 0) empty = true;
            else need += (sz[d] - 1) * st[d];
        }
        if (!empty && need > have)
            fail("a tensor of size " + c10::str(c10::IntArrayRef(sz)) + " at offset " + std::to_string(offset->i) +
                 " needs " + std::to_string(need) + " elements, but its storage holds " + std::to_string(have));
        at::Tensor t = at::empty({0}, at::TensorOptions().dtype(dtype));
        if (empty) {
            t = at::empty(sz, at::TensorOptions().dtype(dtype));
        } else {
            t.set_(storage->storage, offset->i, sz, st);
        }
        auto r = make(K::Tensor);
        r->t = t;
        return r;
    }

    Ref reduce(const Ref &callable, const Ref &args) {
        if (args->k != K::Tuple) bad("calls a function with arguments that are not a tuple");
        const auto &a = args->a;
        if (callable->k == K::Global) {
            const std::string &g = callable->s;
            if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor") {
                if (a.size() < 4) bad("calls " + g + " with too few arguments");
                if (a[0]->k != K::Storage) bad("calls " + g + " without a storage");
                return tensor(a[0], a[1], a[2], a[3], a[0]->dtype);
            }
            if (g == "torch._utils._rebuild_tensor_v3") {
                if (a.size() < 7) bad("calls " + g + " with too few arguments");
                at::ScalarType dt;
                if (a[6]->k != K::Global || !dtype_global(a[6]->s, dt))
                    fail("tensors of dtype " + (a[6]->k == K::Global ? a[6]->s : kind_name(*a[6])) + " are not supported");
                return tensor(a[0], a[1], a[2], a[3], dt);
            }
            if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
                if (a.empty() || a[0]->k != K::Tensor) bad("calls " + g + " without a tensor");
                return a[0];
            }
            if (g == "torch._tensor._rebuild_from_type_v2" || g == "torch._tensor._rebuild_from_type") {
                if (a.size() < 3) bad("calls " + g + " with too few arguments");
                return reduce(a[0], a[2]);
            }
            if (g.rfind("torch._utils._rebuild_", 0) == 0)
                fail("this checkpoint holds a tensor kind that is not supported (" + g +
                     "): only dense CPU/CUDA tensors can be loaded");
            if (g == "collections.OrderedDict" || g == "builtins.dict" || g == "__builtin__.dict") {
                auto d = make(K::Dict);
                if (!a.empty() && (a[0]->k == K::List || a[0]->k == K::Tuple))
                    for (auto &p : a[0]->a)
                        if (p->k == K::Tuple && p->a.size() == 2) dict_set(*d, p->a[0], p->a[1]);
                return d;
            }
            if (g == "torch.Size" || g == "builtins.tuple" || g == "__builtin__.tuple")
                return make_seq(K::Tuple, a.empty() ? std::vector<Ref>{} : a[0]->a);
            if (g == "builtins.set" || g == "builtins.frozenset" || g == "builtins.list" || g == "__builtin__.set")
                return make_seq(K::List, a.empty() ? std::vector<Ref>{} : a[0]->a);
            if (g == "copyreg._reconstructor" || g == "copy_reg._reconstructor") {
                auto o = make(K::Object);
                o->s = !a.empty() && a[0]->k == K::Global ? a[0]->s : "?";
                return o;
            }
        }
        // Anything else is not called: a placeholder that keeps the arguments.
        auto o = make(K::Object);
        o->s = callable->k == K::Global || callable->k == K::Object ? callable->s : kind_name(*callable);
        if (!a.empty()) o->a.push_back(args);
        return o;
    }

    Ref run() {
        for (;;) {
            uint8_t op = in.byte();
            switch (op) {
            case 0x80: {  // PROTO
                uint8_t v = in.byte();
                if (v > 5) bad("uses pickle protocol " + std::to_string(v) + ", newer than 5");
                break;
            }
            case 0x95: in.le<uint64_t>(); break;  // FRAME: the frame length is only a hint
            case '.': {                           // STOP
                Ref r = pop();
                return r;
            }
            case '(': marks.push_back(stack.size()); break;
            case '0': pop(); break;
            case '1': pop_mark(); break;
            case '2': push(top()); break;
            case 'N': push(make(K::None)); break;
            case 0x88: push(make_bool(true)); break;
            case 0x89: push(make_bool(false)); break;
            case 'I': {
                std::string s = in.line();
                if (s == "00") push(make_bool(false));
                else if (s == "01") push(make_bool(true));
                else push(make_int(std::stoll(s)));
                break;
            }
            case 'J': push(make_int(in.le<int32_t>())); break;
            case 'K': push(make_int(in.byte())); break;
            case 'M': push(make_int(in.le<uint16_t>())); break;
            case 'L': {
                std::string s = in.line();
                if (!s.empty() && s.back() == 'L') s.pop_back();
                try {
                    push(make_int(std::stoll(s)));
                } catch (...) {
                    push(make_str(s, K::BigInt));
                }
                break;
            }
            case 0x8a: case 0x8b: {  // LONG1, LONG4
                uint64_t n = op == 0x8a ? in.byte() : in.le<uint32_t>();
                std::string b = in.bytes(n);
                if (n <= 8) {
                    uint64_t v = 0;
                    for (size_t j = 0; j < n; j++) v |= uint64_t(uint8_t(b[j])) << (8 * j);
                    if (n > 0 && n < 8 && (uint8_t(b[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);
                    push(make_int(static_cast<int64_t>(v)));
                } else {
                    push(make_str(b, K::BigInt));
                }
                break;
            }
            case 'F': {
                auto r = make(K::Float);
                r->f = std::stod(in.line());
                push(r);
                break;
            }
            case 'G': {
                unsigned char b[8];
                in.exact(b, 8);
                uint64_t bits = 0;
                for (int j = 0; j < 8; j++) bits = bits << 8 | b[j];  // big-endian
                auto r = make(K::Float);
                std::memcpy(&r->f, &bits, 8);
                push(r);
                break;
            }
            case 'S': {
                std::string s = in.line();
                if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"')) s = s.substr(1, s.size() - 2);
                push(make_str(s));
                break;
            }
            case 'T': push(make_str(in.bytes(in.le<uint32_t>()))); break;
            case 'U': push(make_str(in.bytes(in.byte()))); break;
            case 'V': push(make_str(in.line())); break;
            case 'X': push(make_str(in.bytes(in.le<uint32_t>()))); break;
            case 0x8c: push(make_str(in.bytes(in.byte()))); break;
            case 0x8d: push(make_str(in.bytes(in.le<uint64_t>()))); break;
            case 'B': push(make_str(in.bytes(in.le<uint32_t>()), K::Bytes)); break;
            case 'C': push(make_str(in.bytes(in.byte()), K::Bytes)); break;
            case 0x8e: case 0x96: push(make_str(in.bytes(in.le<uint64_t>()), K::Bytes)); break;
            case ')': push(make(K::Tuple)); break;
            case 't': push(make_seq(K::Tuple, pop_mark())); break;
            case 0x85: { auto x = pop(); push(make_seq(K::Tuple, {x})); break; }
            case 0x86: { auto y = pop(), x = pop(); push(make_seq(K::Tuple, {x, y})); break; }
            case 0x87: { auto z = pop(), y = pop(), x = pop(); push(make_seq(K::Tuple, {x, y, z})); break; }
            case ']': push(make(K::List)); break;
            case 'l': push(make_seq(K::List, pop_mark())); break;
            case 'a': { auto x = pop(); append(top(), {x}); break; }
            case 'e': { auto items = pop_mark(); append(top(), std::move(items)); break; }
            case '}': push(make(K::Dict)); break;
            case 'd': { auto items = pop_mark(); auto d = make(K::Dict); set_items(d, items); push(d); break; }
            case 's': { auto v = pop(), k = pop(); set_items(top(), {k, v}); break; }
            case 'u': { auto items = pop_mark(); set_items(top(), items); break; }
            case 0x8f: push(make(K::List)); break;                                    // EMPTY_SET
            case 0x90: { auto items = pop_mark(); append(top(), std::move(items)); break; }  // ADDITEMS
            case 0x91: push(make_seq(K::List, pop_mark())); break;                   // FROZENSET
            case 'c': {
                std::string module = in.line(), name = in.line();
                push(global(module + "." + name));
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                auto name = pop(), module = pop();
                if (name->k != K::Str || module->k != K::Str) bad("has a STACK_GLOBAL without strings");
                push(global(module->s + "." + name->s));
                break;
            }
            case 'R': { auto args = pop(), f = pop(); push(reduce(f, args)); break; }
            case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
                auto args = pop(), cls = pop();
                auto o = make(K::Object);
                o->s = cls->k == K::Global ? cls->s : kind_name(*cls);
                if (cls->k == K::Global && (cls->s == "collections.OrderedDict" || cls->s == "builtins.dict")) o = make(K::Dict);
                else if (args->k == K::Tuple && !args->a.empty()) o->a.push_back(args);
                push(o);
                break;
            }
            case 0x92: {  // NEWOBJ_EX
                auto kwargs = pop(), args = pop(), cls = pop();
                auto o = make(K::Object);
                o->s = cls->k == K::Global ? cls->s : kind_name(*cls);
                o->a = {args, kwargs};
                push(o);
                break;
            }
            case 'b': {  // BUILD
                auto state = pop();
                Ref &obj = top();
                if (obj->k == K::Object) obj->a.push_back(state);
                // Dicts (OrderedDict's _metadata), tensors (Parameter state) and the rest: the state is not needed.
                break;
            }
            case 'i': {  // INST (protocol 0)
                std::string module = in.line(), name = in.line();
                auto o = make(K::Object);
                o->s = module + "." + name;
                if (globals) globals->insert(o->s);
                auto args = pop_mark();
                if (!args.empty()) o->a.push_back(make_seq(K::Tuple, args));
                push(o);
                break;
            }
            case 'o': {  // OBJ (protocol 1)
                auto items = pop_mark();
                if (items.empty()) bad("has OBJ without a class");
                auto o = make(K::Object);
                o->s = items[0]->k == K::Global ? items[0]->s : kind_name(*items[0]);
                if (items.size() > 1) o->a.push_back(make_seq(K::Tuple, {items.begin() + 1, items.end()}));
                push(o);
                break;
            }
            case 'p': memo[std::stoull(in.line())] = top(); break;
            case 'q': memo[in.byte()] = top(); break;
            case 'r': memo[in.le<uint32_t>()] = top(); break;
            case 0x94: memo[memo.size()] = top(); break;  // MEMOIZE
            case 'g': case 'h': case 'j': {
                uint64_t k = op == 'g' ? std::stoull(in.line()) : op == 'h' ? in.byte() : in.le<uint32_t>();
                auto it = memo.find(k);
                if (it == memo.end()) bad("refers to memo entry " + std::to_string(k) + ", which was never stored");
                push(it->second);
                break;
            }
            case 'P': push(persistent_load(make_str(in.line()))); break;
            case 'Q': push(persistent_load(pop())); break;
            default: {
                std::ostringstream m;
                m << "uses opcode 0x" << std::hex << int(op) << ", which checkpoints do not need (corrupt file?)";
                bad(m.str());
            }
            }
        }
    }
};

Ref unpickle(Input &in, StorageSource *storages, std::set<std::string> *globals) {
    Unpickler u(in, storages, globals);
    return u.run();
}

// ---- storages ----

struct ZipStorages : StorageSource {
    caffe2::serialize::PyTorchStreamReader &reader;
    std::map<std::string, Ref> cache;
    explicit ZipStorages(caffe2::serialize::PyTorchStreamReader &r) : reader(r) {}
    Ref load(const std::string &key, at::ScalarType dtype, int64_t numel) override {
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
        std::string name = "data/" + key;
        if (!reader.hasRecord(name)) fail("the archive has no record " + name + " for a storage it refers to");
        auto [ptr, size] = reader.getRecord(name);
        size_t need = static_cast<size_t>(numel) * c10::elementSize(dtype);
        if (size < need)
            fail("record " + name + " holds " + std::to_string(size) + " bytes, its storage needs " + std::to_string(need));
        auto r = make(K::Storage);
        r->storage = c10::Storage(c10::Storage::use_byte_size_t(), size, std::move(ptr), nullptr, false);
        r->dtype = dtype;
        r->numel = numel;
        cache[key] = r;
        return r;
    }
};

// Legacy files: storages are allocated when the object pickle names them and filled from the trailing data, which
// the file must hold: a storage larger than the whole file is refused before it is allocated (a 200-byte file could
// otherwise make a 4 GB allocation).
struct LegacyStorages : StorageSource {
    std::map<std::string, Ref> cache;
    uint64_t file_size;
    explicit LegacyStorages(uint64_t file_size) : file_size(file_size) {}
    Ref load(const std::string &key, at::ScalarType dtype, int64_t numel) override {
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
        if (numel > (int64_t(1) << 40)) fail("a storage claims " + std::to_string(numel) + " elements (corrupt file?)");
        uint64_t nbytes = static_cast<uint64_t>(numel) * c10::elementSize(dtype);
        if (nbytes > file_size)
            fail("storage " + key + " claims " + std::to_string(nbytes) + " bytes, more than the whole file (" +
                 std::to_string(file_size) + " bytes) holds (truncated or corrupt file?)");
        auto r = make(K::Storage);
        r->storage = c10::Storage(c10::Storage::use_byte_size_t(), static_cast<size_t>(numel) * c10::elementSize(dtype),
                                  at::getCPUAllocator(), false);
        r->dtype = dtype;
        r->numel = numel;
        cache[key] = r;
        return r;
    }
};

Ref load_zip(const std::string &path, std::set<std::string> &globals) {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("constants.pkl") || reader.hasRecord("code/__torch__.py"))
        fail("this is a TorchScript module (torch.jit.save), not a torch.save file: load it as a ScriptModule");
    if (!reader.hasRecord("data.pkl")) fail("the zip archive has no data.pkl record, so it was not written by torch.save");
    if (reader.hasRecord("byteorder")) {
        auto [p, n] = reader.getRecord("byteorder");
        std::string order(static_cast<const char *>(p.get()), n);
        if (order != "little") fail("the checkpoint was saved on a " + order + "-endian machine, which is not supported");
    }
    auto [ptr, size] = reader.getRecord("data.pkl");
    MemInput in(static_cast<const char *>(ptr.get()), size, "data.pkl");
    ZipStorages storages(reader);
    return unpickle(in, &storages, &globals);
}

Ref load_legacy(const std::string &path, std::set<std::string> &globals) {
    FileInput in(path);
    if (!in.f) fail("cannot open: " + std::string(std::strerror(errno)));
    Ref magic = unpickle(in, nullptr, &globals);
    static const unsigned char expected[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (magic->k != K::BigInt || magic->s != std::string(reinterpret_cast<const char *>(expected), 10))
        fail("not a torch.save file: it is a pickle, but does not start with torch's magic number");
    Ref version = unpickle(in, nullptr, &globals);
    if (version->k != K::Int || version->i != 1001)
        fail("legacy torch.save protocol version " + (version->k == K::Int ? std::to_string(version->i) : "?") +
             " is not supported (expected 1001)");
    Ref sys = unpickle(in, nullptr, &globals);
    if (sys->k == K::Dict)
        for (size_t j = 0; j < sys->a.size(); j++)
            if (sys->a[j]->k == K::Str && sys->a[j]->s == "little_endian" && sys->v[j]->k == K::Bool && !sys->v[j]->b)
                fail("the checkpoint was saved on a big-endian machine, which is not supported");
    std::error_code size_error;
    uint64_t file_size = std::filesystem::file_size(path, size_error);
    if (size_error) fail("cannot read the file's size: " + size_error.message());
    LegacyStorages storages(file_size);
    Ref root = unpickle(in, &storages, &globals);
    Ref keys = unpickle(in, nullptr, &globals);
    if (keys->k != K::List) fail("the storage key list is missing (truncated file?)");
    for (auto &k : keys->a) {
        std::string key = k->k == K::Str ? k->s : k->k == K::Int ? std::to_string(k->i) : "";
        auto it = storages.cache.find(key);
        if (it == storages.cache.end()) fail("the file stores data for storage " + key + ", which nothing refers to");
        auto &st = *it->second;
        int64_t n = in.le<int64_t>();
        if (n != st.numel)
            fail("storage " + key + " holds " + std::to_string(n) + " elements, but the object expects " +
                 std::to_string(st.numel));
        if (st.storage.nbytes()) in.exact(st.storage.mutable_data(), st.storage.nbytes());
    }
    if (keys->a.size() != storages.cache.size()) fail("some storages have no data (truncated file?)");
    return root;
}

// ---- flattening ----

// The flattened checkpoint. Containers may be shared (tied weights: one tensor under two names) and even cyclic,
// so the walk is bounded: whether a value holds a tensor is computed once per value, and the walk gives up after
// `max_visits` steps instead of unrolling a DAG of 60 shared levels into 2^60 names.
struct Found {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    std::vector<std::string> skipped;  // "name: description"
    std::unordered_map<const Obj *, bool> holds_tensor;
    size_t visits = 0;
    static constexpr size_t max_visits = 1000000;
};

// Whether `o` holds a tensor at any depth (a value being examined counts as holding none, which ends cycles).
bool has_tensor(const Obj &o, Found &found) {
    if (o.k == K::Tensor) return true;
    if (o.a.empty() && o.v.empty()) return false;
    auto it = found.holds_tensor.find(&o);
    if (it != found.holds_tensor.end()) return it->second;
    // Iterative post-order walk, so that a deep chain cannot overflow the stack.
    std::vector<std::pair<const Obj *, size_t>> todo{{&o, 0}};
    found.holds_tensor[&o] = false;
    while (!todo.empty()) {
        auto &[x, next] = todo.back();
        size_t n = x->a.size() + x->v.size();
        if (next < n) {
            const Obj *child = (next < x->a.size() ? x->a[next] : x->v[next - x->a.size()]).get();
            next++;
            if (child->k == K::Tensor) {
                found.holds_tensor[x] = true;
                next = n;
            } else if (!found.holds_tensor.count(child)) {
                found.holds_tensor[child] = false;
                todo.push_back({child, 0});
            } else if (found.holds_tensor[child]) {
                found.holds_tensor[x] = true;
                next = n;
            }
            continue;
        }
        bool holds = found.holds_tensor[x];
        todo.pop_back();
        if (holds && !todo.empty()) found.holds_tensor[todo.back().first] = true;
    }
    return found.holds_tensor[&o];
}

std::string describe(const Obj &o) {
    switch (o.k) {
    case K::Bool: return std::string("bool ") + (o.b ? "True" : "False");
    case K::Int: return "int " + std::to_string(o.i);
    case K::BigInt: return "int (over 64 bits)";
    case K::Float: {
        std::ostringstream s;
        s << "float " << o.f;
        return s.str();
    }
    case K::Str: return "str '" + (o.s.size() > 40 ? o.s.substr(0, 37) + "..." : o.s) + "'";
    case K::Bytes: return "bytes (" + std::to_string(o.s.size()) + ")";
    case K::Tuple: case K::List: return kind_name(o) + " of " + std::to_string(o.a.size()) + " values, no tensors";
    case K::Dict: return "dict of " + std::to_string(o.a.size()) + " entries, no tensors";
    case K::Object: return "object of class " + o.s;
    default: return kind_name(o);
    }
}

void collect(const Ref &v, const std::string &prefix, Found &out, int depth = 0) {
    auto join = [&](const std::string &k) { return prefix.empty() ? k : prefix + "." + k; };
    std::string here = prefix.empty() ? "(root)" : prefix;
    if (depth > 256) fail("the checkpoint nests containers deeper than 256 levels (a reference cycle?)");
    if (++out.visits > Found::max_visits)
        fail("the checkpoint's containers refer to shared containers more than " + std::to_string(Found::max_visits) +
             " times when flattened into names (shared or cyclic references; not a plain state dict)");
    if (v->k == K::Tensor) {
        out.tensors.emplace_back(prefix, v->t);
        return;
    }
    if (!has_tensor(*v, out)) {
        out.skipped.push_back(here + ": " + describe(*v));
        return;
    }
    switch (v->k) {
    case K::Dict:
        for (size_t j = 0; j < v->a.size(); j++) collect(v->v[j], join(key_name(*v->a[j])), out, depth + 1);
        break;
    case K::List: case K::Tuple:
        for (size_t j = 0; j < v->a.size(); j++) collect(v->a[j], join(std::to_string(j)), out, depth + 1);
        break;
    case K::Object:
        // Not rebuilt: its arguments and states are walked in place, under the object's own name.
        out.skipped.push_back(here + ": object of class " + v->s + " (not rebuilt; its tensors are kept)");
        for (auto &x : v->a) {
            if (x->k == K::Dict || x->k == K::Tuple || x->k == K::List) {
                for (size_t j = 0; j < x->a.size(); j++)
                    collect(x->k == K::Dict ? x->v[j] : x->a[j],
                            join(x->k == K::Dict ? key_name(*x->a[j]) : std::to_string(j)), out, depth + 1);
            } else {
                collect(x, prefix, out, depth + 1);
            }
        }
        break;
    default:
        out.skipped.push_back(here + ": " + describe(*v));
    }
}

char **strings(const std::vector<std::string> &v) {
    auto **p = static_cast<char **>(std::malloc(sizeof(char *) * std::max<size_t>(v.size(), 1)));
    for (size_t i = 0; i < v.size(); i++) p[i] = strdup(v[i].c_str());
    return p;
}

void collect_ivalue(const c10::IValue &v, std::vector<at::Tensor> &out, std::string &bad) {
    if (v.isTensor()) out.push_back(v.toTensor());
    else if (v.isTuple()) for (auto &e : v.toTupleRef().elements()) collect_ivalue(e, out, bad);
    else if (v.isList()) for (auto e : v.toListRef()) collect_ivalue(e, out, bad);
    else if (bad.empty()) bad = v.tagKind();
}

}  // namespace

int64_t ct_load_pickle(const char *path, char ***names, ct_tensor **tensors, char ***skipped, int64_t *n_skipped,
                       char ***unsafe, int64_t *n_unsafe) {
    CT_GUARD(-1, {
        std::string p(path);
        Arena arena;  // every value of this load, torn down without recursion when the load ends
        Ref root;
        std::set<std::string> globals;
        try {
            std::ifstream f(p, std::ios::binary);
            if (!f) fail("cannot open: " + std::string(std::strerror(errno)));
            unsigned char magic[4] = {0, 0, 0, 0};
            f.read(reinterpret_cast<char *>(magic), 4);
            auto got = f.gcount();
            f.close();
            if (got == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) {
                root = load_zip(p, globals);
            } else if (got >= 2 && magic[0] == 0x80 && magic[1] >= 2 && magic[1] <= 5) {
                root = load_legacy(p, globals);
            } else {
                fail(std::string("not a torch.save file (neither a zip archive nor a pickle") +
                     (got < 4 ? "; the file is shorter than 4 bytes)" : ")"));
            }
        } catch (const c10::Error &e) {
            fail(p + ": cannot load the torch.save file: " + e.what_without_backtrace());
        } catch (const std::exception &e) {
            fail(p + ": cannot load the torch.save file: " + e.what());
        }
        Found found;
        collect(root, "", found);
        std::vector<std::string> ns;
        for (auto &t : found.tensors) ns.push_back(t.first);
        *names = strings(ns);
        *tensors = static_cast<ct_tensor *>(std::malloc(sizeof(ct_tensor) * std::max<size_t>(ns.size(), 1)));
        for (size_t i = 0; i < found.tensors.size(); i++) (*tensors)[i] = wrap(found.tensors[i].second);
        *skipped = strings(found.skipped);
        *n_skipped = static_cast<int64_t>(found.skipped.size());
        std::vector<std::string> flagged;
        for (auto &g : globals) if (!known_safe_global(g)) flagged.push_back(g);
        *unsafe = strings(flagged);
        *n_unsafe = static_cast<int64_t>(flagged.size());
        return static_cast<int64_t>(ns.size());
    })
}

void ct_free_loaded(char **names, ct_tensor *tensors, int64_t n) {
    for (int64_t i = 0; i < n; i++) std::free(names[i]);
    std::free(names);
    std::free(tensors);
}

void ct_free_strings(char **s, int64_t n) {
    for (int64_t i = 0; i < n; i++) std::free(s[i]);
    std::free(s);
}

ct_module ct_jit_load(const char *path, int dev) {
    CT_GUARD(nullptr, {
        {
            std::ifstream f(path, std::ios::binary);
            if (!f) fail(std::string(path) + ": cannot open: " + std::strerror(errno));
        }
        try {
            auto *m = new torch::jit::Module(torch::jit::load(path, device(dev)));
            m->eval();
            return reinterpret_cast<ct_module>(m);
        } catch (const c10::Error &e) {
            fail(std::string(path) + ": cannot load the TorchScript module: " + e.what_without_backtrace());
        }
    })
}

int64_t ct_jit_forward(ct_module m, const ct_tensor *inputs, int64_t n, ct_tensor *outputs, int64_t cap) {
    CT_GUARD(-1, {
        std::vector<c10::IValue> args;
        for (int64_t i = 0; i < n; i++) args.emplace_back(T(inputs[i]));
        c10::IValue r = reinterpret_cast<torch::jit::Module *>(m)->forward(args);
        std::vector<at::Tensor> out;
        std::string bad;
        collect_ivalue(r, out, bad);
        if (!bad.empty()) fail("TorchScript forward returned a non-tensor value (" + bad + ")");
        if (static_cast<int64_t>(out.size()) > cap)
            fail("TorchScript forward returned " + std::to_string(out.size()) + " tensors, room for " + std::to_string(cap));
        for (size_t i = 0; i < out.size(); i++) outputs[i] = wrap(out[i]);
        return static_cast<int64_t>(out.size());
    })
}

void ct_jit_free(ct_module m) { delete reinterpret_cast<torch::jit::Module *>(m); }
