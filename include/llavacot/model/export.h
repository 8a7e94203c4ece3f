// Hugging Face model directories out and in (mllama spec §1.3, §3, §4.1, §6): exporting a checkpoint as the
// directory transformers' MllamaForConditionalGeneration and AutoProcessor load (config, generation config,
// sharded legacy-layout safetensors with their index, tokenizer files with the chat template, the image
// processor config, a model card), and checking a model directory from its headers and small files alone.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace llavacot::model {

struct ExportOptions {
  std::string dtype = "bf16";                 // bf16 | fp16 | fp32
  uint64_t max_shard_bytes = 5ull * 1000 * 1000 * 1000;  // transformers' "5GB"
  bool overwrite = false;                     // replace an existing output directory
  std::string eval_results;                   // results.json of `llavacot eval` for the model card ("" = look
                                              // beside the checkpoint)
};

struct ExportReport {
  std::vector<std::string> files;  // written, relative to the output directory
  int64_t tensors = 0, parameters = 0;
  uint64_t weight_bytes = 0;
};

/// Writes `out_dir` from a model directory (a training checkpoint or a Hugging Face directory with config.json,
/// weights and tokenizer.json). Everything is checked before anything is written (config, every parameter's
/// name and shape, the tokenizer); files go to a temporary sibling directory renamed into place at the end, so a
/// failure leaves no partial `out_dir`. An existing `out_dir` is refused unless options.overwrite.
ExportReport export_hf(const std::string& checkpoint, const std::string& out_dir, const ExportOptions& options = {});

/// The chat template written into the exported tokenizer files: the Llama 3.2 Vision format llavacot trains with
/// (text/chat_format.h) as a Jinja template.
const std::string& chat_template();

/// What `llavacot inspect` finds in a model directory or safetensors file, reading headers and small files only.
struct ModelCheck {
  bool has_config = false;
  std::string config_summary;                                  // one line per fact
  std::map<std::string, std::pair<int64_t, int64_t>> areas;    // area -> (tensors, parameters) of the checkpoint
  std::map<std::string, std::pair<int64_t, int64_t>> dtypes;   // dtype -> (tensors, elements)
  std::vector<std::string> files;                              // weight files
  int64_t tensors = 0, parameters = 0;
  uint64_t bytes = 0;
  std::vector<std::string> notes;     // facts worth knowing (missing optional files, ...)
  std::vector<std::string> problems;  // what makes it unusable: unreadable shards, missing or mis-shaped keys, ...
};
ModelCheck check_model(const std::string& path);

}  // namespace llavacot::model
