// From the `data:` section of a run config to a running loader: the reader of train.jsonl, the preprocessor,
// the image processor (the model's tile settings within data.max_image_tiles), bad_records.jsonl in the run
// directory, and the loader, built and owned together.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llavacot/config/config.h"
#include "llavacot/data/loader.h"
#include "llavacot/model/mllama_config.h"

namespace llavacot::data {

/// The image processor settings a model takes: its tile size, tile count and aspect-ratio list.
vision::ImageProcessorConfig image_processor_config(const model::MllamaVisionConfig& vision);

/// What the data section does not say: the rest comes from the run and the model.
struct TrainingDataSettings {
  int64_t batch_size = 1;
  uint64_t seed = 0;
  int64_t rank = 0, world = 1;
  text::TokenId pad_id = 0;
  std::string run_dir;  // bad_records.jsonl is written here; "" = not written (refusals are still counted)
};

class TrainingData {
 public:
  /// `images` holds the model's tile settings; data.max_image_tiles may lower the tile budget, never raise it.
  /// Throws ConfigError naming the key when a setting cannot be honoured, IoError when train.jsonl is unreadable.
  TrainingData(const DataConfig& config, const text::Tokenizer& tokenizer, const vision::ImageProcessorConfig& images,
               const TrainingDataSettings& settings);
  ~TrainingData();

  DataLoader& loader() { return *loader_; }
  const LlavaCotReader& reader() const { return *reader_; }
  const vision::ImageProcessor& image_processor() const { return *images_; }
  const BadRecordLog& bad_records() const { return *bad_records_; }

 private:
  std::unique_ptr<LlavaCotReader> reader_;
  std::unique_ptr<vision::ImageProcessor> images_;
  std::unique_ptr<Preprocessor> preprocessor_;
  std::unique_ptr<BadRecordLog> bad_records_;
  std::unique_ptr<DataLoader> loader_;
};

}  // namespace llavacot::data
