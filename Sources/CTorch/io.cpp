// torch.save files through libtorch's unpickler, and TorchScript modules.
#include <torch/script.h>
#include <torch/serialize.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "shim.h"

using namespace ctorch;

namespace {

// Collects every tensor in a nested structure of dicts, lists and tuples, naming it by its dotted path.
void collect(const c10::IValue &v, const std::string &prefix, std::vector<std::pair<std::string, at::Tensor>> &out) {
    auto join = [&](const std::string &k) { return prefix.empty() ? k : prefix + "." + k; };
    if (v.isTensor()) {
        out.emplace_back(prefix, v.toTensor());
    } else if (v.isGenericDict()) {
        for (const auto &kv : v.toGenericDict()) {
            const c10::IValue &key = kv.key();
            std::string name = key.isString() ? key.toStringRef() : key.isInt() ? std::to_string(key.toInt()) : "?";
            collect(kv.value(), join(name), out);
        }
    } else if (v.isList()) {
        auto l = v.toListRef();
        for (size_t i = 0; i < l.size(); i++) collect(l[i], join(std::to_string(i)), out);
    } else if (v.isTuple()) {
        const auto &e = v.toTupleRef().elements();
        for (size_t i = 0; i < e.size(); i++) collect(e[i], join(std::to_string(i)), out);
    }
}

}  // namespace

int64_t ct_load_pickle(const char *path, char ***names, ct_tensor **tensors) {
    CT_GUARD(-1, {
        std::ifstream f(path, std::ios::binary);
        if (!f) throw std::runtime_error(std::string("cannot open ") + path);
        std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        c10::IValue root = torch::pickle_load(bytes);
        std::vector<std::pair<std::string, at::Tensor>> found;
        collect(root, "", found);
        *names = static_cast<char **>(std::malloc(sizeof(char *) * std::max<size_t>(found.size(), 1)));
        *tensors = static_cast<ct_tensor *>(std::malloc(sizeof(ct_tensor) * std::max<size_t>(found.size(), 1)));
        for (size_t i = 0; i < found.size(); i++) {
            (*names)[i] = strdup(found[i].first.c_str());
            (*tensors)[i] = wrap(found[i].second);
        }
        return static_cast<int64_t>(found.size());
    })
}

void ct_free_loaded(char **names, ct_tensor *tensors, int64_t n) {
    for (int64_t i = 0; i < n; i++) std::free(names[i]);
    std::free(names);
    std::free(tensors);
}

ct_module ct_jit_load(const char *path, int dev) {
    CT_GUARD(nullptr, {
        auto *m = new torch::jit::Module(torch::jit::load(path, device(dev)));
        m->eval();
        return reinterpret_cast<ct_module>(m);
    })
}

int64_t ct_jit_forward(ct_module m, const ct_tensor *inputs, int64_t n, ct_tensor *outputs, int64_t cap) {
    CT_GUARD(-1, {
        std::vector<c10::IValue> args;
        for (int64_t i = 0; i < n; i++) args.emplace_back(T(inputs[i]));
        c10::IValue r = reinterpret_cast<torch::jit::Module *>(m)->forward(args);
        std::vector<std::pair<std::string, at::Tensor>> found;
        collect(r, "", found);
        if (static_cast<int64_t>(found.size()) > cap)
            throw std::runtime_error("TorchScript forward returned " + std::to_string(found.size()) +
                                     " tensors, room for " + std::to_string(cap));
        for (size_t i = 0; i < found.size(); i++) outputs[i] = wrap(found[i].second);
        return static_cast<int64_t>(found.size());
    })
}

void ct_jit_free(ct_module m) { delete reinterpret_cast<torch::jit::Module *>(m); }
