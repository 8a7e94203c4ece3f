// From validated LLaVA-CoT records to what the model takes: chat-formatted ids with the LLaVA-CoT loss mask
// (llava-cot spec §2.4), the processed image, the length policy, and collation into a right-padded Batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "llavacot/data/llava_cot.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/chat_format.h"
#include "llavacot/vision/image_processor.h"

namespace llavacot::data {

/// One preprocessed sample.
struct Example {
  size_t index = 0;   // record index in the reader
  int64_t line = 0;   // its line in train.jsonl
  std::string id;
  std::vector<text::TokenId> ids;     // <|begin_of_text|> ... the last <|eot_id|>
  std::vector<text::TokenId> labels;  // the id where trained (assistant turns), kIgnoreLabel elsewhere
  std::vector<vision::ProcessedImage> images;  // 0 or 1 (the image goes with the first human turn)
  bool truncated = false;             // shortened by the truncate_response policy
};

struct PreprocessOptions {
  int64_t max_seq_len = 4096;          // 0 = no limit
  std::string length_policy = "drop";  // drop | truncate_response
};

class Preprocessor {
 public:
  /// Keeps references: the tokenizer and the image processor must outlive it.
  Preprocessor(const text::Tokenizer& tokenizer, const vision::ImageProcessor& images, PreprocessOptions options);
  /// Renders the conversation (image part before the text of the first human turn) and processes the image.
  /// Throws BadRecord: image_corrupt when the image does not decode, too_long when the sample exceeds
  /// max_seq_len under `drop`, or under `truncate_response` when not one trained token would remain.
  Example operator()(const Record& record, size_t index) const;

 private:
  text::ChatFormat chat_;
  const vision::ImageProcessor& images_;
  PreprocessOptions options_;
};

/// A right-padded batch, in the layout the model takes.
struct Batch {
  torch::Tensor input_ids;             // [B, S] int64, padding = the pad id
  torch::Tensor attention_mask;        // [B, S] int64, 1 = real token
  torch::Tensor labels;                // [B, S] int64, kIgnoreLabel where not trained or padding
  // Defined when any sample has an image (text-only rows then have no visible tile):
  torch::Tensor pixel_values;          // [B, M, T, 3, S, S] float32
  torch::Tensor aspect_ratio_ids;      // [B, M] int64
  torch::Tensor aspect_ratio_mask;     // [B, M, T] int64
  torch::Tensor cross_attention_mask;  // [B, S, M, T] int64, the processor's rule (mllama spec §5)
  std::vector<std::string> ids;        // record ids
  std::vector<size_t> indices;         // record indices
  int64_t real_tokens = 0;             // tokens that are not padding

  int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  /// The model's inputs (labels included).
  model::MllamaInputs inputs() const;
};

/// Collates examples into a right-padded batch (sequence length = the longest example).
Batch collate(const std::vector<Example>& examples, text::TokenId pad_id, text::TokenId image_token_id,
              const vision::ImageProcessor& images);

}  // namespace llavacot::data
