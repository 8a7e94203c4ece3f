#include "llavacot/decode/batcher.h"

#include <algorithm>
#include <thread>

namespace llavacot::decode {

void QuestionBatch::run(int64_t n, const std::function<void(int64_t index)>& answer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = n;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    threads.emplace_back([this, i, &answer, &errors] {
      try {
        answer(i);
      } catch (...) {
        errors[static_cast<size_t>(i)] = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      wake_driver_.notify_one();
    });
  drive();
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

void QuestionBatch::submit(Job& job) {
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&job);
  wake_driver_.notify_one();
  wake_workers_.wait(lock, [&job] { return job.done; });
  if (job.error) std::rethrow_exception(job.error);
}

std::vector<Generation> QuestionBatch::generate(int64_t key, RowSet& rows, const std::vector<GenerateRequest>& requests,
                                                Counters& counters) {
  Job job;
  job.key = key;
  job.rows = &rows;
  job.requests = &requests;
  submit(job);
  counters = job.counters;
  return std::move(job.out);
}

void QuestionBatch::exclusive(int64_t key, const std::function<void()>& work) {
  Job job;
  job.key = key;
  job.work = &work;
  submit(job);
}

void QuestionBatch::drive() {
  for (;;) {
    std::vector<Job*> jobs;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Every unfinished question waits on the model (each waits on one job at a time).
      wake_driver_.wait(lock, [this] { return static_cast<int64_t>(queue_.size()) == running_; });
      if (running_ == 0) return;
      jobs.swap(queue_);
    }
    // The order threads arrived in varies from run to run; the batch's rows do not.
    std::sort(jobs.begin(), jobs.end(), [](const Job* a, const Job* b) { return a->key < b->key; });
    std::vector<Job*> generations;
    for (Job* job : jobs) {
      if (!job->work) {
        generations.push_back(job);
        continue;
      }
      try {
        (*job->work)();
      } catch (...) {
        job->error = std::current_exception();
      }
    }
    if (!generations.empty()) {
      try {
        std::vector<RowSet*> sets;
        std::vector<std::vector<GenerateRequest>> requests;
        for (Job* job : generations) {
          sets.push_back(job->rows);
          requests.push_back(*job->requests);
        }
        std::vector<Counters> counted;
        auto outs = engine_.generate_together(sets, requests, &counted);
        for (size_t k = 0; k < generations.size(); ++k) {
          generations[k]->out = std::move(outs[k]);
          generations[k]->counters = counted[k];
        }
      } catch (...) {
        const auto error = std::current_exception();
        for (Job* job : generations) job->error = error;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job* job : jobs) job->done = true;
    }
    wake_workers_.notify_all();
  }
}

}  // namespace llavacot::decode
