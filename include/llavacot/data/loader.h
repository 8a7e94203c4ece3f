// The training data loader: a deterministic epoch plan (shuffle from (seed, epoch), disjoint shards by
// (rank, world) with the same step count on every rank), worker threads that preprocess the records of the
// next batches ahead of time, bad records skipped (counted, logged) without stopping the epoch, and a position
// that can be saved and restored so a resumed run sees exactly the batches an uninterrupted one would.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llavacot/data/batch.h"
#include "llavacot/data/llava_cot.h"

namespace llavacot::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  int64_t workers = 2;          // preprocessing threads; 0 = in the calling thread
  int64_t prefetch = 2;         // batches prepared ahead
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t rank = 0, world = 1;  // this process's shard
  bool skip_bad = true;         // false: the first bad record throws
  int64_t limit = 0;            // use only the first N records (0 = all)
  bool group_by_length = false; // batch records of similar length together (less padding)
  int64_t group_batches = 50;   // ... sorting within windows of this many global batches
  text::TokenId pad_id = 0;
  text::TokenId image_token_id = 0;
};

/// Where a loader stands: the next batch is step `step` of epoch `epoch`.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t step = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && step == o.step; }
  std::string to_json() const;
  static LoaderPosition from_json(const std::string& text);
};

/// The record indices of each rank's batches in one epoch: records [0, n) shuffled with a generator seeded
/// by (seed, epoch), cut to a multiple of `world`, dealt round-robin to ranks, then cut into batches (the last
/// one may be smaller; every rank has the same number).
/// With group_by_length, `lengths[i]` (any size proxy of record i) groups similar records: the shuffled order
/// is cut into windows of group_batches global batches (batch_size x world records), each window is sorted by
/// length, longest first, and the global batches are then shuffled (a smaller last one stays last). A global
/// batch is dealt to the ranks, so the ranks of one step get records of similar length too.
std::vector<std::vector<size_t>> epoch_plan(size_t n, const LoaderOptions& options, int64_t epoch,
                                            const std::vector<uint32_t>* lengths = nullptr);

class DataLoader {
 public:
  /// Keeps references to the reader, the preprocessor, the image processor and the log (which may be null).
  DataLoader(const LlavaCotReader& reader, const Preprocessor& preprocessor, const vision::ImageProcessor& images,
             LoaderOptions options, BadRecordLog* bad_records = nullptr);
  ~DataLoader();

  int64_t steps_per_epoch() const;
  LoaderPosition position() const { return position_; }
  /// Continues from `position` (drops batches prepared ahead).
  void seek(const LoaderPosition& position);
  /// The next batch of this epoch, or nullopt at its end (the position then moves to the next epoch). A batch
  /// whose records were all bad has size() == 0; it still counts as a step, so ranks stay in step.
  std::optional<Batch> next();

 private:
  struct Pool;
  size_t record_count() const;  // records in use (options.limit applied)
  void schedule_ahead();
  Batch build(int64_t step);

  const LlavaCotReader& reader_;
  const Preprocessor& preprocessor_;
  const vision::ImageProcessor& images_;
  LoaderOptions options_;
  BadRecordLog* bad_records_;
  LoaderPosition position_;
  int64_t plan_epoch_ = -1;
  std::vector<std::vector<size_t>> plan_;
  std::vector<uint32_t> lengths_;  // JSONL line bytes of each record (group_by_length)
  std::unique_ptr<Pool> pool_;
};

}  // namespace llavacot::data
