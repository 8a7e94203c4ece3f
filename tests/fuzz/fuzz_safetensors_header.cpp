// libFuzzer target for the safetensors header parser: any byte string is a candidate file image.
// Build and run with scripts/fuzz_safetensors.sh. A parse either succeeds with a header whose tensors
// tile the data buffer exactly, or throws FormatError; anything else (crash, sanitizer report, other
// exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "llavacot/io/safetensors_format.h"
#include "llavacot/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llavacot::safetensors;
  try {
    Header h = parse_file_image(data, size, "fuzz");
    uint64_t covered = 0;
    for (const auto& t : h.tensors) {
      if (t.end < t.begin || t.end > h.data_size) std::abort();
      if (t.n_bytes() != static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype)) std::abort();
      covered += t.n_bytes();
    }
    if (covered != h.data_size || h.data_start + h.data_size != size) std::abort();
    // Re-serialising what we accepted must give a header we accept again.
    std::string again = serialize_header(h.tensors, h.metadata);
    Header h2 = parse_header_json(again.data(), again.size(), h.data_size, "fuzz-reserialised");
    if (h2.tensors.size() != h.tensors.size()) std::abort();
  } catch (const llavacot::FormatError&) {
  }
  return 0;
}
