// llavacot bench WHAT: measurements printed as one JSON record plus a table, ours side by side with a peer
// measured in the same run. See docs/benchmarks.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench_util.h"
#include "common.h"
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "llavacot/build_config.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/vision/image_processor.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

// A deterministic mixed corpus: English-like prose, code, numbers, whitespace runs, CJK, Cyrillic, Arabic,
// emoji, split into documents of about 4 KB.
std::vector<std::string> make_corpus(size_t target_bytes, uint32_t seed) {
  static const char* const kWords[] = {
      "the", "image", "shows", "a", "red", "circle", "next", "to", "two", "blue", "squares", "and", "answer",
      "question", "reasoning", "because", "therefore", "which", "option", "is", "correct", "triangle", "area",
      "figure", "count", "objects", "left", "right", "above", "below", "Summary", "Caption", "Conclusion",
      "I'll", "don't", "it's", "we're", "They've", "HELLO", "World", "model", "training", "tokenizer",
      "transformer", "vision", "language", "benchmark", "accuracy", "probability", "approximately", "x", "y"};
  static const char* const kOther[] = {
      "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { s += a[i]; }\n", "{\"k\": [1, 2, 3]}",
      "3.14159", "2026-11-28", "1,234,567", "42", "\n\n", "    ", "\t", "  \n", "你好，世界。", "图像中有三个圆。",
      "Привет, мир.", "مرحبا بالعالم", "नमस्ते", "😀", "👨‍👩‍👧", "<SUMMARY>", "</CONCLUSION>", "(A)", "?", "!", "..."};
  std::mt19937 rng(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < target_bytes) {
    std::string doc;
    while (doc.size() < 4096) {
      if (rng() % 6 == 0) {
        doc += kOther[rng() % (sizeof(kOther) / sizeof(kOther[0]))];
      } else {
        doc += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
        doc += rng() % 9 == 0 ? ", " : (rng() % 13 == 0 ? ". " : " ");
      }
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

template <class F>
double best_of(int repeats, F&& fn) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

void bench_tokenizer(const std::string& tokenizer_path, double megabytes, int threads, const std::string& python,
                     const std::string& out_dir) {
  auto tok = text::BpeTokenizer::from_tokenizer_json(tokenizer_path);
  auto docs = make_corpus(static_cast<size_t>(megabytes * 1e6), 1234);
  size_t n_bytes = 0;
  for (const auto& d : docs) n_bytes += d.size();
  LOG_INFO("bench", "tokenizer: ", docs.size(), " documents, ", n_bytes, " bytes, ", threads, " threads");

  int64_t n_tokens = 0;
  double t1 = best_of(3, [&] {
    n_tokens = 0;
    std::vector<text::TokenId> ids;
    for (const auto& d : docs) {
      ids.clear();
      tok.encode_ordinary(d, ids);
      n_tokens += static_cast<int64_t>(ids.size());
    }
  });
  double tmt = best_of(3, [&] {
    std::vector<std::thread> pool;
    std::atomic<size_t> next{0};
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        std::vector<text::TokenId> ids;
        for (size_t i = next++; i < docs.size(); i = next++) {
          ids.clear();
          tok.encode_ordinary(docs[i], ids);
        }
      });
    for (auto& th : pool) th.join();
  });

  nlohmann::json rec = {{"bench", "tokenizer"}, {"bytes", n_bytes}, {"documents", docs.size()},
                        {"threads", threads},   {"ours_tokens", n_tokens},
                        {"ours_1t_MBps", n_bytes / t1 / 1e6}, {"ours_mt_MBps", n_bytes / tmt / 1e6}};

  // Peers on the same documents, in the same run.
  fs::create_dirs(out_dir);
  std::string docs_path = out_dir + "/tokenizer_bench_docs.jsonl";
  {
    std::ofstream f(docs_path);
    for (const auto& d : docs) f << nlohmann::json(d).dump() << "\n";
  }
  std::string script = std::string(LLAVACOT_SOURCE_DIR) + "/scripts/bench/tokenizer_peers.py";
  std::string cmd = sh_quote(python) + " " + sh_quote(script) + " " + sh_quote(tokenizer_path) + " " +
                    sh_quote(docs_path) + " " + std::to_string(threads);
  std::string peer_out = run_capture(cmd);
  if (peer_out.empty()) {
    LOG_WARN("bench", "peers unavailable (needs python3 with tiktoken and tokenizers): reporting ours only");
  } else {
    auto peers = nlohmann::json::parse(peer_out);
    double b = static_cast<double>(n_bytes);
    rec["tiktoken_1t_MBps"] = b / peers["tiktoken_1t_s"].get<double>() / 1e6;
    rec["tiktoken_mt_MBps"] = b / peers["tiktoken_mt_s"].get<double>() / 1e6;
    rec["tokenizers_1t_MBps"] = b / peers["tokenizers_1t_s"].get<double>() / 1e6;
    rec["tokenizers_mt_MBps"] = b / peers["tokenizers_mt_s"].get<double>() / 1e6;
    rec["tiktoken_tokens"] = peers["tiktoken_tokens"];
    rec["tokenizers_tokens"] = peers["tokenizers_tokens"];
    rec["ratio_1t_vs_tiktoken"] = rec["ours_1t_MBps"].get<double>() / rec["tiktoken_1t_MBps"].get<double>();
    rec["ratio_1t_vs_tokenizers"] = rec["ours_1t_MBps"].get<double>() / rec["tokenizers_1t_MBps"].get<double>();
    rec["ratio_mt_vs_tiktoken"] = rec["ours_mt_MBps"].get<double>() / rec["tiktoken_mt_MBps"].get<double>();
    rec["same_token_count"] = peers["tiktoken_tokens"].get<int64_t>() == n_tokens &&
                              peers["tokenizers_tokens"].get<int64_t>() == n_tokens;
  }
  std::cout << rec.dump() << "\n\n";
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "encode throughput (MB/s)      1 thread   " << threads << " threads\n";
  auto row = [&](const char* name, const char* k1, const char* k2) {
    if (!rec.contains(k1)) return;
    std::cout << "  " << std::left << std::setw(28) << name << std::right << std::setw(8) << rec[k1].get<double>()
              << std::setw(11) << rec[k2].get<double>() << "\n";
  };
  row("llavacot", "ours_1t_MBps", "ours_mt_MBps");
  row("tiktoken", "tiktoken_1t_MBps", "tiktoken_mt_MBps");
  row("tokenizers", "tokenizers_1t_MBps", "tokenizers_mt_MBps");
  if (rec.contains("ratio_1t_vs_tiktoken"))
    std::cout << "  ours / tiktoken, 1 thread: " << rec["ratio_1t_vs_tiktoken"].get<double>() << "x"
              << (rec["same_token_count"].get<bool>() ? "" : "  (token counts differ!)") << "\n";
}

// 1920x1080 JPEG bytes -> 4 packed tiles at 560 px, ours against transformers' processor on the same bytes.
void bench_image(int threads, const std::string& python, const std::string& out_dir) {
  cv::Mat m(1080, 1920, CV_8UC3);
  cv::RNG rng(42);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      auto* p = m.ptr<uint8_t>(y) + x * 3;
      p[0] = static_cast<uint8_t>((x + y) / 12 + rng.uniform(0, 24));
      p[1] = static_cast<uint8_t>((x * 3 + y) / 24 + rng.uniform(0, 24));
      p[2] = static_cast<uint8_t>((y * 2) / 9 + rng.uniform(0, 24));
    }
  std::vector<uint8_t> buf;
  cv::imencode(".jpg", m, buf, {cv::IMWRITE_JPEG_QUALITY, 90});
  const std::string jpeg(buf.begin(), buf.end());
  fs::create_dirs(out_dir);
  const std::string jpeg_path = out_dir + "/bench_1920x1080.jpg";
  fs::write_file_atomic(jpeg_path, jpeg);

  vision::ImageProcessor proc(vision::ImageProcessorConfig{});
  auto one = [&] {
    std::vector<std::vector<vision::Image>> batch(1);
    batch[0].push_back(vision::decode_image(jpeg, "bench.jpg"));
    at::Tensor pv, ids, mask;
    proc.process_batch(batch, pv, ids, mask);
    return pv;
  };
  at::Tensor ours_pv = one();
  // Where one image's time goes (single thread).
  cv::setNumThreads(1);
  at::set_num_threads(1);
  {
    auto t0 = std::chrono::steady_clock::now();
    vision::Image img;
    for (int i = 0; i < 10; ++i) img = vision::decode_image(jpeg, "bench.jpg");
    double t_dec = seconds_since(t0) / 10;
    auto [ch, cw] = vision::optimal_canvas(img.height, img.width, proc.config());
    auto [nh, nw] = vision::fit_to_canvas(img.height, img.width, ch, cw, proc.config().tile_size);
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) vision::resize_bilinear(img, nh, nw);
    double t_res = seconds_since(t0) / 10;
    t0 = std::chrono::steady_clock::now();
    vision::ProcessedImage p;
    for (int i = 0; i < 10; ++i) p = proc.process(img);
    double t_proc = seconds_since(t0) / 10;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) {
      at::Tensor pv, ids, mask;
      proc.pack({{p}}, pv, ids, mask);
    }
    double t_pack = seconds_since(t0) / 10;
    LOG_INFO("bench", "per image: decode ", t_dec * 1e3, " ms, resize ", t_res * 1e3, " ms, process (resize + tiles) ",
             t_proc * 1e3, " ms, pack from processed ", t_pack * 1e3, " ms (process_batch skips the pack copy)");
  }
  const int iters = 20;
  double t1 = best_of(2, [&] {
    for (int i = 0; i < iters; ++i) one();
  });
  cv::setNumThreads(threads);
  at::set_num_threads(threads);
  const int per_thread = 10;
  double tmt = best_of(2, [&] {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) one();
      });
    for (auto& th : pool) th.join();
  });
  nlohmann::json rec = {{"bench", "image"},
                        {"input", "1920x1080 JPEG (q90) -> 2x2 tiles of 560 px, packed"},
                        {"threads", threads},
                        {"ours_1t_images_per_s", iters / t1},
                        {"ours_mt_images_per_s", threads * per_thread / tmt}};
  std::string ref_path = out_dir + "/bench_image_ref.safetensors";
  std::string peer = run_capture(sh_quote(python) + " " +
                                 sh_quote(std::string(LLAVACOT_SOURCE_DIR) + "/scripts/bench/image_peers.py") + " " +
                                 sh_quote(jpeg_path) + " 10 " + sh_quote(ref_path));
  if (peer.empty()) {
    LOG_WARN("bench", "peer unavailable (needs python3 with transformers and pillow): reporting ours only");
  } else {
    auto pj = nlohmann::json::parse(peer);
    rec["transformers_pil_images_per_s"] = 1.0 / pj["pil_s_per_image"].get<double>();
    if (!pj["torchvision_s_per_image"].is_null())
      rec["transformers_torchvision_images_per_s"] = 1.0 / pj["torchvision_s_per_image"].get<double>();
    at::Tensor ref = safetensors::File::open(ref_path).get("pixel_values");
    rec["max_abs_diff_vs_reference"] = ref.sizes() == ours_pv.sizes() ? (ref - ours_pv).abs().max().item<double>() : -1.0;
    rec["ratio_1t_vs_transformers_pil"] =
        rec["ours_1t_images_per_s"].get<double>() / rec["transformers_pil_images_per_s"].get<double>();
    // The reference processor has no multi-threaded path: all-cores ours against its single thread.
    rec["ratio_mt_vs_transformers_pil"] =
        rec["ours_mt_images_per_s"].get<double>() / rec["transformers_pil_images_per_s"].get<double>();
  }
  std::cout << rec.dump() << "\n\n" << std::fixed << std::setprecision(2);
  std::cout << "images/s (1920x1080 JPEG -> 4 tiles)   1 thread   " << threads << " threads\n";
  std::cout << "  llavacot" << std::setw(34) << rec["ours_1t_images_per_s"].get<double>() << std::setw(11)
            << rec["ours_mt_images_per_s"].get<double>() << "\n";
  if (rec.contains("transformers_pil_images_per_s"))
    std::cout << "  transformers (PIL)" << std::setw(24) << rec["transformers_pil_images_per_s"].get<double>()
              << std::setw(11) << "-" << "\n  ours / transformers, 1 thread: " << rec["ratio_1t_vs_transformers_pil"].get<double>()
              << "x, all cores: " << rec["ratio_mt_vs_transformers_pil"].get<double>() << "x, max |diff| " << std::scientific << rec["max_abs_diff_vs_reference"].get<double>() << "\n";
}

}  // namespace

void register_bench(CLI::App& app) {
  struct Args {
    std::string what, tokenizer, python = "python3", out_dir = "runs/bench";
    std::string preset = "small", profile_dir, attention = "fused", data, single;
    std::vector<std::string> presets{"tiny", "small"};
    double megabytes = 12;
    int threads = 0;
    bool quick = false, no_peer = false, worker = false;
    int nproc = 2;
    int64_t steps = 32;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("bench", "measure ours against a peer in the same run; prints JSON and a table");
  cmd->add_option("what", a->what, "tokenizer | image | model | data | train | dist | decode")
      ->required()
      ->check(CLI::IsMember({"tokenizer", "image", "model", "data", "train", "dist", "decode"}));
  cmd->add_flag("--worker", a->worker, "dist benchmark, internal: this process is one rank")->group("");
  cmd->add_option("--nproc", a->nproc, "dist benchmark: ranks (default 2)");
  cmd->add_option("--single", a->single, "train benchmark, internal: measure one mode in this process")
      ->group("");
  cmd->add_option("--preset", a->preset, "model preset or config.json for the model and train benchmarks (default small)");
  cmd->add_flag("--quick", a->quick, "model, data and decode benchmarks: a smoke run, not a measurement");
  cmd->add_flag("--no-peer", a->no_peer, "model and decode benchmarks: skip transformers");
  cmd->add_option("--profile", a->profile_dir, "model and train benchmarks: write chrome traces of one train step here")
      ->type_name("DIR");
  cmd->add_option("--attention", a->attention, "model benchmark: attention backend, fused | math (default fused)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json for the tokenizer and data benchmarks")->type_name("FILE");
  cmd->add_option("--data", a->data, "data benchmark: a make-demo-data folder (default: generate one under --out)")
      ->type_name("DIR");
  cmd->add_option("--presets", a->presets, "data benchmark: model presets (default tiny small)");
  cmd->add_option("--mb", a->megabytes, "corpus size in MB (default 12)");
  cmd->add_option("--threads", a->threads, "threads for the batch figures (0 = all cores)");
  cmd->add_option("--steps", a->steps, "decode benchmark: new tokens per row (default 32)");
  cmd->add_option("--python", a->python, "Python interpreter with the peer packages");
  cmd->add_option("--out", a->out_dir, "folder for the generated corpus");
  cmd->callback([a] {
    int threads = a->threads > 0 ? a->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (a->what == "tokenizer") {
      if (a->tokenizer.empty()) throw UsageError("bench tokenizer needs --tokenizer PATH/tokenizer.json");
      bench_tokenizer(a->tokenizer, a->megabytes, threads, a->python, a->out_dir);
    } else if (a->what == "image") {
      bench_image(threads, a->python, a->out_dir);
    } else if (a->what == "model") {
      BenchModelArgs m;
      m.preset = a->preset, m.python = a->python, m.out_dir = a->out_dir, m.threads = threads;
      m.quick = a->quick, m.no_peer = a->no_peer, m.profile_dir = a->profile_dir, m.attention = a->attention;
      bench_model(m);
    } else if (a->what == "train") {
      BenchTrainArgs t;
      t.preset = a->preset, t.python = a->python, t.out_dir = a->out_dir, t.single = a->single;
      t.threads = threads, t.no_peer = a->no_peer, t.profile_dir = a->profile_dir;
      bench_train(t);
    } else if (a->what == "dist") {
      BenchDistArgs d;
      d.preset = a->preset, d.nproc = a->nproc, d.worker = a->worker;
      d.threads = a->threads > 0 ? a->threads : 1;
      bench_dist(d);
    } else if (a->what == "decode") {
      BenchDecodeArgs d;
      d.preset = a->preset, d.python = a->python, d.out_dir = a->out_dir, d.quick = a->quick, d.no_peer = a->no_peer;
      d.threads = a->threads > 0 ? a->threads : 1;
      d.steps = a->steps;
      bench_decode(d);
    } else if (a->what == "data") {
      BenchDataArgs d;
      d.data_dir = a->data, d.tokenizer = a->tokenizer, d.out_dir = a->out_dir, d.presets = a->presets;
      d.threads = a->threads > 0 ? a->threads : 1;
      d.quick = a->quick;
      bench_data(d);
    }
  });
}

}  // namespace llavacot::cli
