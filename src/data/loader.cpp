#include "llavacot/data/loader.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <thread>

#include "llavacot/util/log.h"

namespace llavacot::data {

std::string LoaderPosition::to_json() const { return nlohmann::json{{"epoch", epoch}, {"step", step}}.dump(); }

LoaderPosition LoaderPosition::from_json(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    LoaderPosition p{j.at("epoch").get<int64_t>(), j.at("step").get<int64_t>()};
    LLAVACOT_CHECK(p.epoch >= 0 && p.step >= 0, FormatError, "negative epoch or step");
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("loader position '", text, "': ", e.what()));
  }
}

std::vector<std::vector<size_t>> epoch_plan(size_t n, const LoaderOptions& o, int64_t epoch,
                                            const std::vector<uint32_t>* lengths) {
  LLAVACOT_CHECK(o.batch_size > 0 && o.world > 0 && o.rank >= 0 && o.rank < o.world, UsageError,
                 "loader needs batch_size > 0 and 0 <= rank < world (got ", o.batch_size, ", ", o.rank, ", ", o.world, ")");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // mt19937_64 is specified exactly by the standard, and indices are taken without a distribution object
  // (whose algorithm is not), so the order is the same on every platform.
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) * 0xBF58476D1CE4E5B9ull + 1);
  auto shuffle = [&rng](std::vector<size_t>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
  };
  if (o.shuffle) shuffle(order);
  const size_t world = static_cast<size_t>(o.world), per_rank = n / world;
  LLAVACOT_CHECK(per_rank > 0, UsageError, n, " records cannot feed ", o.world, " ranks");
  const size_t b = static_cast<size_t>(o.batch_size);
  if (o.group_by_length) {
    LLAVACOT_CHECK(lengths && lengths->size() >= n, UsageError, "group_by_length needs a length for each of the ", n,
                   " records");
    LLAVACOT_CHECK(o.group_batches > 0, UsageError, "group_batches must be > 0");
    order.resize(per_rank * world);
    const size_t global = b * world, window = global * static_cast<size_t>(o.group_batches);
    for (size_t s = 0; s < order.size(); s += window)
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(s),
                       order.begin() + static_cast<std::ptrdiff_t>(std::min(s + window, order.size())),
                       [lengths](size_t x, size_t y) { return (*lengths)[x] > (*lengths)[y]; });
    if (o.shuffle) {
      std::vector<size_t> whole(order.size() / global);
      std::iota(whole.begin(), whole.end(), size_t{0});
      shuffle(whole);
      std::vector<size_t> regrouped;
      regrouped.reserve(order.size());
      for (size_t g : whole) regrouped.insert(regrouped.end(), order.begin() + static_cast<std::ptrdiff_t>(g * global),
                                              order.begin() + static_cast<std::ptrdiff_t>((g + 1) * global));
      regrouped.insert(regrouped.end(), order.begin() + static_cast<std::ptrdiff_t>(whole.size() * global), order.end());
      order = std::move(regrouped);
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t k = 0; k < per_rank; ++k) {
    if (k % b == 0) batches.emplace_back();
    batches.back().push_back(order[k * world + static_cast<size_t>(o.rank)]);
  }
  return batches;
}

// A fixed set of threads running queued tasks; queued tasks not yet started are dropped on destruction.
struct DataLoader::Pool {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> queue;
  std::vector<std::thread> threads;
  bool stop = false;
  // Futures of the records of the steps prepared ahead: step -> one future per record.
  std::map<int64_t, std::vector<std::shared_future<Example>>> ahead;
  int64_t ahead_epoch = -1;

  explicit Pool(int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      threads.emplace_back([this] {
        for (;;) {
          std::function<void()> task;
          {
            std::unique_lock<std::mutex> lock(mutex);
            wake.wait(lock, [this] { return stop || !queue.empty(); });
            if (stop) return;
            task = std::move(queue.front());
            queue.pop_front();
          }
          task();
        }
      });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
      queue.clear();
    }
    wake.notify_all();
    for (auto& t : threads) t.join();
  }
  std::shared_future<Example> submit(std::function<Example()> fn) {
    auto task = std::make_shared<std::packaged_task<Example()>>(std::move(fn));
    auto fut = task->get_future().share();
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.emplace_back([task] { (*task)(); });
    }
    wake.notify_one();
    return fut;
  }
};

DataLoader::DataLoader(const LlavaCotReader& reader, const Preprocessor& preprocessor,
                       const vision::ImageProcessor& images, LoaderOptions options, BadRecordLog* bad_records)
    : reader_(reader), preprocessor_(preprocessor), images_(images), options_(options), bad_records_(bad_records) {
  LLAVACOT_CHECK(options_.workers >= 0 && options_.prefetch >= 0, UsageError, "workers and prefetch must be >= 0");
  if (options_.workers > 0) pool_ = std::make_unique<Pool>(options_.workers);
}

DataLoader::~DataLoader() = default;

size_t DataLoader::record_count() const {
  return options_.limit > 0 ? std::min<size_t>(reader_.size(), static_cast<size_t>(options_.limit)) : reader_.size();
}

int64_t DataLoader::steps_per_epoch() const {
  const int64_t per_rank = static_cast<int64_t>(record_count()) / options_.world;
  return (per_rank + options_.batch_size - 1) / options_.batch_size;
}

void DataLoader::seek(const LoaderPosition& position) {
  LLAVACOT_CHECK(position.step <= steps_per_epoch(), UsageError, "position step ", position.step, " is past the ",
                 steps_per_epoch(), " steps of an epoch");
  position_ = position;
  if (pool_) pool_->ahead.clear();
}

void DataLoader::schedule_ahead() {
  if (!pool_) return;
  if (pool_->ahead_epoch != position_.epoch) {
    pool_->ahead.clear();
    pool_->ahead_epoch = position_.epoch;
  }
  const int64_t last = std::min<int64_t>(position_.step + options_.prefetch, static_cast<int64_t>(plan_.size()) - 1);
  for (int64_t s = position_.step; s <= last; ++s) {
    if (pool_->ahead.count(s)) continue;
    auto& futures = pool_->ahead[s];
    for (size_t idx : plan_[static_cast<size_t>(s)])
      futures.push_back(pool_->submit([this, idx] { return preprocessor_(reader_.get(idx), idx); }));
  }
}

Batch DataLoader::build(int64_t step) {
  const auto& records = plan_[static_cast<size_t>(step)];
  std::vector<std::shared_future<Example>> futures;
  if (pool_) {
    auto it = pool_->ahead.find(step);
    if (it != pool_->ahead.end()) {
      futures = std::move(it->second);
      pool_->ahead.erase(it);
    }
  }
  std::vector<Example> examples;
  for (size_t k = 0; k < records.size(); ++k) {
    try {
      examples.push_back(futures.empty() ? preprocessor_(reader_.get(records[k]), records[k]) : futures[k].get());
    } catch (const BadRecord& bad) {
      if (!options_.skip_bad) throw;
      if (bad_records_) bad_records_->add(bad);
      LOG_DEBUG("data", "skipped ", bad.what());
    }
  }
  if (examples.empty()) return Batch{};
  return collate(examples, options_.pad_id, options_.image_token_id, images_);
}

std::optional<Batch> DataLoader::next() {
  if (plan_epoch_ != position_.epoch) {
    if (options_.group_by_length && lengths_.empty()) {
      lengths_.resize(record_count());
      for (size_t i = 0; i < lengths_.size(); ++i) lengths_[i] = static_cast<uint32_t>(reader_.index().text(i).size());
    }
    plan_ = epoch_plan(record_count(), options_, position_.epoch, options_.group_by_length ? &lengths_ : nullptr);
    plan_epoch_ = position_.epoch;
  }
  if (position_.step >= static_cast<int64_t>(plan_.size())) {
    ++position_.epoch;
    position_.step = 0;
    return std::nullopt;
  }
  schedule_ahead();
  auto batch = build(position_.step);
  ++position_.step;
  schedule_ahead();
  return batch;
}

}  // namespace llavacot::data
