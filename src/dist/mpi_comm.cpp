// The MPI engine: CPU tensors, processes started by Open MPI's mpirun (or `llavacot launch`, which runs it).
// One thread of ours makes every MPI call (it initialises and finalises MPI too, so MPI_THREAD_FUNNELED is all
// it needs), in the order operations were issued, which is the same order on every rank. The caller goes on
// while a collective runs there: buckets of gradients are reduced while backward computes the next ones.
#include <mpi.h>

#include <c10/util/BFloat16.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "comm_engines.h"
#include "llavacot/util/log.h"

namespace llavacot::dist {

namespace {

// MPI counts are int: long tensors go in pieces.
constexpr int64_t kMaxCount = int64_t{1} << 30;

// bfloat16 has no MPI type: it travels as 16-bit words with a sum done in float32.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

class MpiWork : public Work {
 public:
  MpiWork(std::future<void> f, std::chrono::milliseconds timeout, std::string what)
      : future_(std::move(f)), timeout_(timeout), what_(std::move(what)) {}
  void wait() override {
    if (!future_.valid()) return;
    if (future_.wait_for(timeout_) != std::future_status::ready) {
      throw DistError(str_cat(what_, " did not complete within ", timeout_.count() / 1000.0,
                              " s: another rank crashed, hangs, or runs different collectives (dist.timeout_s)"));
    }
    future_.get();  // rethrows an MPI error
  }

 private:
  std::future<void> future_;
  std::chrono::milliseconds timeout_;
  std::string what_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(const WorldEnv& env, const CommOptions& options) : timeout_(options.timeout) {
    worker_ = std::thread([this] { run(); });
    // MPI_Init_thread runs first on the worker; its outcome arrives through the first operation.
    auto init = submit("MPI initialisation", [this] {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &world_);
      MPI_Type_contiguous(2, MPI_BYTE, &bf16_type_);
      MPI_Type_commit(&bf16_type_);
      MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_op_);
    });
    try {
      init->wait();
      LLAVACOT_CHECK(env.launcher != "mpirun" || (rank_ == env.rank && world_ == env.world), DistError, "MPI reports rank ",
                     rank_, " of ", world_, " but the environment says ", env.rank, " of ", env.world);
    } catch (...) {
      stop_worker();
      throw;
    }
  }

  ~MpiCommunicator() override {
    // Stuck inside MPI, or leaving on an error while the other ranks may wait in a collective (MPI_Finalize
    // would wait for them): leave MPI as it is; the non-zero exit makes mpirun stop the job.
    if (broken_ || std::uncaught_exceptions() > 0) {
      worker_.detach();
      return;
    }
    try {
      submit("MPI_Finalize", [this] {
        MPI_Op_free(&bf16_sum_op_);
        MPI_Type_free(&bf16_type_);
        MPI_Finalize();
      })->wait();
    } catch (const std::exception& e) {
      LOG_WARN("dist", "MPI finalisation: ", e.what());
    }
    if (broken_) {
      worker_.detach();
      return;
    }
    stop_worker();
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string engine() const override { return "mpi"; }

  std::shared_ptr<Work> all_reduce_sum(const at::Tensor& t) override {
    check_tensor(t, "all_reduce");
    count(t);
    return submit("all_reduce", [this, t] {
      const auto [type, op] = type_of(t, true);
      for_pieces(t.numel(), [&, type = type, op = op](int64_t off, int n) {  // clang 14 cannot capture bindings
        check(MPI_Allreduce(MPI_IN_PLACE, byte_ptr(t, off), n, type, op, MPI_COMM_WORLD), "MPI_Allreduce");
      });
    });
  }

  std::shared_ptr<Work> broadcast(const at::Tensor& t, int root) override {
    check_tensor(t, "broadcast");
    LLAVACOT_CHECK(root >= 0 && root < world_, UsageError, "broadcast root ", root, " outside 0..", world_ - 1);
    count(t);
    return submit("broadcast", [this, t, root] {
      const auto type = type_of(t, false).first;
      for_pieces(t.numel(), [&](int64_t off, int n) {
        check(MPI_Bcast(byte_ptr(t, off), n, type, root, MPI_COMM_WORLD), "MPI_Bcast");
      });
    });
  }

  std::shared_ptr<Work> reduce_scatter_sum(const at::Tensor& in, const at::Tensor& out) override {
    check_tensor(in, "reduce_scatter");
    check_tensor(out, "reduce_scatter");
    LLAVACOT_CHECK(in.numel() == out.numel() * world_ && in.scalar_type() == out.scalar_type(), UsageError,
                   "reduce_scatter: ", in.numel(), " elements into parts of ", out.numel(), " over ", world_, " ranks");
    LLAVACOT_CHECK(out.numel() < kMaxCount, UsageError, "reduce_scatter parts above 2^30 elements");
    count(in);
    return submit("reduce_scatter", [this, in, out] {
      const auto [type, op] = type_of(in, true);
      check(MPI_Reduce_scatter_block(in.data_ptr(), out.data_ptr(), static_cast<int>(out.numel()), type, op,
                                     MPI_COMM_WORLD),
            "MPI_Reduce_scatter_block");
    });
  }

  std::shared_ptr<Work> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    check_tensor(in, "all_gather");
    check_tensor(out, "all_gather");
    LLAVACOT_CHECK(out.numel() == in.numel() * world_ && in.scalar_type() == out.scalar_type(), UsageError,
                   "all_gather: parts of ", in.numel(), " elements into ", out.numel(), " over ", world_, " ranks");
    LLAVACOT_CHECK(in.numel() < kMaxCount, UsageError, "all_gather parts above 2^30 elements");
    count(in);
    return submit("all_gather", [this, in, out] {
      const auto type = type_of(in, false).first;
      check(MPI_Allgather(in.data_ptr(), static_cast<int>(in.numel()), type, out.data_ptr(),
                          static_cast<int>(in.numel()), type, MPI_COMM_WORLD),
            "MPI_Allgather");
    });
  }

  void barrier() override {
    submit("barrier", [] { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); })->wait();
  }

 private:
  void stop_worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  struct Job {
    std::function<void()> fn;
    std::promise<void> done;
  };

  std::shared_ptr<Work> submit(const std::string& what, std::function<void()> fn) {
    auto job = std::make_shared<Job>();
    job->fn = std::move(fn);
    auto future = job->done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    cv_.notify_one();
    return std::make_shared<BrokenAwareWork>(this, std::move(future), timeout_, str_cat("MPI ", what, " on rank ", rank_));
  }

  // Marks the communicator broken when a wait times out (its thread is stuck inside MPI).
  class BrokenAwareWork : public Work {
   public:
    BrokenAwareWork(MpiCommunicator* owner, std::future<void> f, std::chrono::milliseconds timeout, std::string what)
        : owner_(owner), inner_(std::move(f), timeout, std::move(what)) {}
    void wait() override {
      try {
        inner_.wait();
      } catch (const DistError&) {
        owner_->broken_ = true;
        throw;
      }
    }

   private:
    MpiCommunicator* owner_;
    MpiWork inner_;
  };

  void run() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        job->fn();
        job->done.set_value();
      } catch (...) {
        job->done.set_exception(std::current_exception());
      }
    }
  }

  static void check(int code, const char* call) {
    if (code != MPI_SUCCESS) throw DistError(str_cat(call, " failed: ", mpi_error(code)));
  }

  static void check_tensor(const at::Tensor& t, const char* op) {
    LLAVACOT_CHECK(t.defined() && t.is_cpu() && t.is_contiguous(), UsageError, op,
                   " needs a contiguous CPU tensor (the mpi engine)");
  }

  std::pair<MPI_Datatype, MPI_Op> type_of(const at::Tensor& t, bool reduce) const {
    switch (t.scalar_type()) {
      case at::kFloat: return {MPI_FLOAT, MPI_SUM};
      case at::kDouble: return {MPI_DOUBLE, MPI_SUM};
      case at::kLong: return {MPI_INT64_T, MPI_SUM};
      case at::kInt: return {MPI_INT32_T, MPI_SUM};
      case at::kByte: return {MPI_UINT8_T, MPI_SUM};
      case at::kBFloat16: return {bf16_type_, reduce ? bf16_sum_op_ : MPI_SUM};
      default: throw UsageError(str_cat("the mpi engine does not carry ", t.scalar_type(), " tensors"));
    }
  }

  static void* byte_ptr(const at::Tensor& t, int64_t element_offset) {
    return static_cast<char*>(t.data_ptr()) + element_offset * static_cast<int64_t>(t.element_size());
  }

  template <class F>
  static void for_pieces(int64_t numel, F&& f) {
    for (int64_t off = 0; off < numel; off += kMaxCount) f(off, static_cast<int>(std::min(kMaxCount, numel - off)));
  }

  std::chrono::milliseconds timeout_;
  int rank_ = 0, world_ = 1;
  MPI_Datatype bf16_type_ = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum_op_ = MPI_OP_NULL;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::atomic<bool> broken_{false};
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const WorldEnv& env, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(env, options);
}

}  // namespace llavacot::dist
