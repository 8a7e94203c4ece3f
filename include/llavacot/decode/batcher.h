// Several questions' searches answered together: each question's strategy runs on a thread of its own, and
// whenever every unfinished one waits on the model, the calling thread decodes all their expansions as one
// batch (Engine::generate_together) and runs their other model work (prefills, judge turns) one at a time.
// A small model's decoding is bound by per-operation overhead, which the batch then pays once a step for all.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#include "llavacot/decode/policy.h"

namespace llavacot::decode {

class QuestionBatch : public EngineGate {
 public:
  explicit QuestionBatch(Engine& engine) : engine_(engine) {}

  /// Calls answer(i) for every i in [0, n), each on its own thread with its policy on this gate (key i), and
  /// drives the engine from the calling thread until every call has returned. Rethrows the first question's
  /// exception (by index) after all have ended.
  void run(int64_t n, const std::function<void(int64_t index)>& answer);

  std::vector<Generation> generate(int64_t key, RowSet& rows, const std::vector<GenerateRequest>& requests,
                                   Counters& counters) override;
  void exclusive(int64_t key, const std::function<void()>& work) override;

 private:
  struct Job {
    int64_t key = 0;
    RowSet* rows = nullptr;  // a generation, or
    const std::vector<GenerateRequest>* requests = nullptr;
    const std::function<void()>* work = nullptr;  // other engine work
    std::vector<Generation> out;
    Counters counters;
    bool done = false;
    std::exception_ptr error;
  };
  void submit(Job& job);
  void drive();

  Engine& engine_;
  std::mutex mu_;
  std::condition_variable wake_driver_, wake_workers_;
  std::vector<Job*> queue_;
  int64_t running_ = 0;  // questions not yet answered
};

}  // namespace llavacot::decode
