#include "llavacot/data/batch.h"

#include <algorithm>

#include "llavacot/vision/image.h"

namespace llavacot::data {

Preprocessor::Preprocessor(const text::Tokenizer& tokenizer, const vision::ImageProcessor& images,
                           PreprocessOptions options)
    : chat_(tokenizer), images_(images), options_(std::move(options)) {
  LLAVACOT_CHECK(options_.length_policy == "drop" || options_.length_policy == "truncate_response", UsageError,
                 "length_policy must be drop or truncate_response, got '", options_.length_policy, "'");
}

Example Preprocessor::operator()(const Record& record, size_t index) const {
  Example ex;
  ex.index = index;
  ex.line = record.line;
  ex.id = record.id;
  std::vector<text::Message> messages;
  for (size_t t = 0; t < record.turns.size(); ++t) {
    const auto& turn = record.turns[t];
    text::Message m{turn.from == "human" ? "user" : "assistant", {}};
    if (t == 0 && record.has_image()) m.content.push_back(text::ContentPart::image());
    m.content.push_back(text::ContentPart::from_text(turn.value));
    messages.push_back(std::move(m));
  }
  auto rendered = chat_.render(messages);
  ex.ids = std::move(rendered.ids);
  ex.labels = std::move(rendered.labels);
  const auto limit = options_.max_seq_len;
  if (limit > 0 && static_cast<int64_t>(ex.ids.size()) > limit) {
    if (options_.length_policy == "drop")
      throw BadRecord(BadReason::kTooLong, record.line, record.id,
                      str_cat(ex.ids.size(), " tokens > max_seq_len ", limit));
    ex.ids.resize(static_cast<size_t>(limit));
    ex.labels.resize(static_cast<size_t>(limit));
    ex.truncated = true;
    if (std::all_of(ex.labels.begin(), ex.labels.end(), [](text::TokenId l) { return l == text::kIgnoreLabel; }))
      throw BadRecord(BadReason::kTooLong, record.line, record.id,
                      str_cat("the prompt alone fills max_seq_len ", limit, ": nothing left to train"));
  }
  if (record.has_image()) {
    try {
      ex.images.push_back(images_.process(vision::decode_image_file(record.image_path)));
    } catch (const Error& e) {
      throw BadRecord(BadReason::kImageCorrupt, record.line, record.id, e.what());
    }
  }
  return ex;
}

Batch collate(const std::vector<Example>& examples, text::TokenId pad_id, text::TokenId image_token_id,
              const vision::ImageProcessor& images) {
  LLAVACOT_CHECK(!examples.empty(), UsageError, "collate needs at least one example");
  const auto b = static_cast<int64_t>(examples.size());
  int64_t s = 0;
  bool any_image = false;
  for (const auto& ex : examples) {
    s = std::max<int64_t>(s, static_cast<int64_t>(ex.ids.size()));
    any_image = any_image || !ex.images.empty();
  }
  Batch batch;
  batch.input_ids = torch::full({b, s}, static_cast<int64_t>(pad_id), torch::kInt64);
  batch.attention_mask = torch::zeros({b, s}, torch::kInt64);
  batch.labels = torch::full({b, s}, static_cast<int64_t>(text::kIgnoreLabel), torch::kInt64);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();
  std::vector<std::vector<int32_t>> padded(examples.size());
  std::vector<std::vector<int64_t>> num_tiles(examples.size());
  std::vector<std::vector<vision::ProcessedImage>> pixels(examples.size());
  for (int64_t r = 0; r < b; ++r) {
    const auto& ex = examples[static_cast<size_t>(r)];
    const auto n = static_cast<int64_t>(ex.ids.size());
    for (int64_t i = 0; i < n; ++i) {
      ids[r][i] = ex.ids[static_cast<size_t>(i)];
      mask[r][i] = 1;
      labels[r][i] = ex.labels[static_cast<size_t>(i)];
    }
    batch.real_tokens += n;
    padded[static_cast<size_t>(r)].assign(ex.ids.begin(), ex.ids.end());
    padded[static_cast<size_t>(r)].resize(static_cast<size_t>(s), pad_id);
    for (const auto& img : ex.images) num_tiles[static_cast<size_t>(r)].push_back(img.n_tiles());
    pixels[static_cast<size_t>(r)] = ex.images;
    batch.ids.push_back(ex.id);
    batch.indices.push_back(ex.index);
  }
  if (any_image) {
    images.pack(pixels, batch.pixel_values, batch.aspect_ratio_ids, batch.aspect_ratio_mask);
    batch.cross_attention_mask = vision::cross_attention_mask(padded, num_tiles, image_token_id,
                                                              images.config().max_tiles, batch.pixel_values.size(1));
  }
  return batch;
}

model::MllamaInputs Batch::inputs() const {
  model::MllamaInputs in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  in.labels = labels;
  in.pixel_values = pixel_values;
  in.aspect_ratio_ids = aspect_ratio_ids;
  in.aspect_ratio_mask = aspect_ratio_mask;
  in.cross_attention_mask = cross_attention_mask;
  return in;
}

}  // namespace llavacot::data
