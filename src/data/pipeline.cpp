#include "llavacot/data/pipeline.h"

#include <filesystem>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::data {

vision::ImageProcessorConfig image_processor_config(const model::MllamaVisionConfig& v) {
  vision::ImageProcessorConfig c;
  c.tile_size = v.image_size;
  c.max_tiles = v.max_num_tiles;
  c.aspect_ratios = v.supported_aspect_ratios;
  return c;
}

TrainingData::TrainingData(const DataConfig& c, const text::Tokenizer& tokenizer,
                           const vision::ImageProcessorConfig& images, const TrainingDataSettings& s) {
  const auto problems = c.validate();
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    throw ConfigError("data: " + all);
  }
  LLAVACOT_CHECK(!c.train_file.empty(), ConfigError, "data.train_file is not set");
  LLAVACOT_CHECK(c.max_image_tiles <= images.max_tiles, ConfigError, "data.max_image_tiles = ", c.max_image_tiles,
                 " exceeds the model's max_num_tiles = ", images.max_tiles);
  const auto& sp = tokenizer.special_ids();
  LLAVACOT_CHECK(sp.image >= 0, ConfigError, "the tokenizer has no <|image|> token");

  ReaderOptions ro;
  ro.image_root = c.image_root;
  ro.allow_text_only = c.allow_text_only;
  reader_ = std::make_unique<LlavaCotReader>(c.train_file, ro);

  vision::ImageProcessorConfig ic = images;
  if (c.max_image_tiles > 0 && c.max_image_tiles < images.max_tiles) ic.max_canvas_tiles = c.max_image_tiles;
  images_ = std::make_unique<vision::ImageProcessor>(ic);

  PreprocessOptions po;
  po.max_seq_len = c.max_seq_len;
  po.length_policy = c.length_policy;
  preprocessor_ = std::make_unique<Preprocessor>(tokenizer, *images_, po);

  std::string log_path;
  if (!s.run_dir.empty()) {
    fs::create_dirs(s.run_dir);
    // One file per rank, so that ranks never interleave their lines.
    log_path = s.run_dir + (s.rank == 0 ? "/bad_records.jsonl" : str_cat("/bad_records.rank-", s.rank, ".jsonl"));
  }
  bad_records_ = std::make_unique<BadRecordLog>(log_path);

  LoaderOptions lo;
  lo.batch_size = s.batch_size;
  lo.workers = c.num_workers;
  lo.prefetch = c.prefetch;
  lo.shuffle = c.shuffle;
  lo.seed = s.seed;
  lo.rank = s.rank;
  lo.world = s.world;
  lo.skip_bad = c.on_bad_record == "skip";
  lo.limit = c.limit;
  lo.group_by_length = c.group_by_length;
  lo.pad_id = s.pad_id;
  lo.image_token_id = sp.image;
  loader_ = std::make_unique<DataLoader>(*reader_, *preprocessor_, *images_, lo, bad_records_.get());
  LOG_INFO0("data", c.train_file, ": ", reader_->size(), " records", c.limit > 0 ? str_cat(" (using ", std::min<int64_t>(c.limit, static_cast<int64_t>(reader_->size())), ")") : "",
            ", ", loader_->steps_per_epoch(), " steps per epoch of ", s.batch_size, " x ", s.world, " rank(s)");
}

TrainingData::~TrainingData() = default;

}  // namespace llavacot::data
