// Vision pretraining on segmentation masks (see vision_pretrain.h).
#include "llavacot/train/vision_pretrain.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <torch/torch.h>

#include "llavacot/config/config.h"
#include "llavacot/config/loader.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/dist/comm.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/mllama.h"
#include "llavacot/train/optim.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"
#include "llavacot/vision/image.h"
#include "llavacot/vision/image_processor.h"

namespace llavacot::train {

namespace stdfs = std::filesystem;

std::vector<MaskPair> read_mask_listing(const std::string& path) {
  const std::string text = fs::read_file(path);
  const stdfs::path base = stdfs::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return stdfs::path(p).is_absolute() ? p : (base / p).string(); };
  std::vector<MaskPair> out;
  size_t start = 0;
  for (int64_t line_no = 1; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str_cat(path, ":", line_no, ": not a JSON object (", e.what(), ")"));
    }
    LLAVACOT_CHECK(j.is_object(), FormatError, path, ":", line_no, ": not a JSON object");
    MaskPair pair;
    for (auto [key, dst] : {std::pair<const char*, std::string*>{"image", &pair.image}, {"mask", &pair.mask}}) {
      const auto it = j.find(key);
      LLAVACOT_CHECK(it != j.end(), FormatError, path, ":", line_no, ": missing field '", key, "'");
      LLAVACOT_CHECK(it->is_string() && !it->get<std::string>().empty(), FormatError, path, ":", line_no, ": field '", key,
                     "' must be a non-empty path string");
      *dst = resolve(it->get<std::string>());
    }
    out.push_back(std::move(pair));
  }
  LLAVACOT_CHECK(!out.empty(), FormatError, path, ": no (image, mask) pairs");
  return out;
}

Mask decode_mask(const std::string& bytes, const std::string& source) {
  LLAVACOT_CHECK(!bytes.empty(), FormatError, source, ": empty mask file");
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat m;
  try {
    m = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw FormatError(str_cat(source, ": not a decodable mask image (", e.what(), ")"));
  }
  LLAVACOT_CHECK(!m.empty(), FormatError, source, ": not a decodable mask image");
  LLAVACOT_CHECK(m.type() == CV_8UC1, FormatError, source, ": a mask must have one 8-bit channel of class ids, this one has ",
                 m.channels(), " channel(s) of ", m.depth() == CV_8U ? 8 : 16, "+ bits (save it as a grayscale PNG)");
  Mask out;
  out.height = m.rows;
  out.width = m.cols;
  out.data.resize(static_cast<size_t>(m.rows) * static_cast<size_t>(m.cols));
  for (int y = 0; y < m.rows; ++y) std::copy_n(m.ptr<uint8_t>(y), m.cols, out.data.data() + static_cast<size_t>(y) * m.cols);
  return out;
}

std::vector<int64_t> patch_labels(const Mask& mask, const vision::ImageProcessorConfig& processor, int64_t patch_size,
                                  int64_t num_classes, double min_cover, const std::string& source, int64_t* tiles,
                                  int64_t sub_grid) {
  const int64_t h = mask.height, w = mask.width, tile = processor.tile_size;
  LLAVACOT_CHECK(h > 0 && w > 0 && static_cast<int64_t>(mask.data.size()) == h * w, FormatError, source, ": empty mask");
  LLAVACOT_CHECK(patch_size > 0 && tile % patch_size == 0, UsageError, "patch size ", patch_size, " does not divide the tile size ",
                 tile);
  LLAVACOT_CHECK(sub_grid >= 1 && patch_size % sub_grid == 0, UsageError, "sub-grid ", sub_grid, " does not divide the patch size ",
                 patch_size);
  for (size_t i = 0; i < mask.data.size(); ++i)
    LLAVACOT_CHECK(mask.data[i] < num_classes, FormatError, source, ": pixel (x ", static_cast<int64_t>(i) % w, ", y ",
                   static_cast<int64_t>(i) / w, ") has class ", static_cast<int>(mask.data[i]), " but vision_pretrain.num_classes is ",
                   num_classes);
  const auto [canvas_h, canvas_w] = vision::optimal_canvas(h, w, processor);
  const auto [rh, rw] = vision::fit_to_canvas(h, w, canvas_h, canvas_w, tile);
  const int64_t tiles_h = canvas_h / tile, tiles_w = canvas_w / tile, grid = tile / patch_size;
  if (tiles) *tiles = tiles_h * tiles_w;
  // Nearest neighbour: resized pixel i samples source pixel floor((i + 0.5) * src / dst).
  std::vector<int64_t> src_y(static_cast<size_t>(rh)), src_x(static_cast<size_t>(rw));
  for (int64_t y = 0; y < rh; ++y) src_y[static_cast<size_t>(y)] = std::min(h - 1, (2 * y + 1) * h / (2 * rh));
  for (int64_t x = 0; x < rw; ++x) src_x[static_cast<size_t>(x)] = std::min(w - 1, (2 * x + 1) * w / (2 * rw));
  // Each patch is cut into sub_grid x sub_grid cells, labelled row by row after the patch's place.
  const int64_t cell = patch_size / sub_grid, cells = sub_grid * sub_grid;
  std::vector<int64_t> labels(static_cast<size_t>(tiles_h * tiles_w * grid * grid * cells), -100);
  std::vector<int64_t> counts(static_cast<size_t>(num_classes));
  for (int64_t ty = 0; ty < tiles_h; ++ty)
    for (int64_t tx = 0; tx < tiles_w; ++tx)
      for (int64_t py = 0; py < grid; ++py)
        for (int64_t px = 0; px < grid; ++px)
          for (int64_t cy = 0; cy < sub_grid; ++cy)
            for (int64_t cx = 0; cx < sub_grid; ++cx) {
              std::fill(counts.begin(), counts.end(), 0);
              int64_t inside = 0;
              const int64_t y0 = ty * tile + py * patch_size + cy * cell, x0 = tx * tile + px * patch_size + cx * cell;
              for (int64_t y = y0; y < std::min(y0 + cell, rh); ++y)
                for (int64_t x = x0; x < std::min(x0 + cell, rw); ++x) {
                  ++counts[mask.data[static_cast<size_t>(src_y[static_cast<size_t>(y)] * w + src_x[static_cast<size_t>(x)])]];
                  ++inside;
                }
              if (2 * inside < cell * cell) continue;  // mostly padding: no label
              const auto best = std::max_element(counts.begin() + 1, counts.end());
              const bool object =
                  best != counts.end() && *best > 0 && static_cast<double>(*best) >= min_cover * static_cast<double>(inside);
              labels[static_cast<size_t>((((ty * tiles_w + tx) * grid + py) * grid + px) * cells + cy * sub_grid + cx)] =
                  object ? best - counts.begin() : 0;
            }
  return labels;
}

namespace {

std::string format_eta(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return str_cat(s / 60, ":", s % 60 < 10 ? "0" : "", s % 60);
}

}  // namespace

VisionPretrainSummary run_vision_pretraining(const Config& cfg) {
  const auto& vp = cfg.vision_pretrain;
  const auto& tc = cfg.train;
  LLAVACOT_CHECK(!vp.file.empty(), ConfigError, "vision_pretrain.file is not set (a JSONL of image and mask paths)");
  LLAVACOT_CHECK(vp.num_classes >= 2, ConfigError, "vision_pretrain.num_classes is not set (the masks' class count)");
  LLAVACOT_CHECK(tc.max_steps > 0, ConfigError, "pretrain-vision needs train.max_steps > 0");
  LLAVACOT_CHECK(tc.precision == "fp32", ConfigError, "pretrain-vision trains in fp32; set train.precision: fp32");
  const std::string run_dir = cfg.run.output_dir;
  const std::string final_dir = run_dir + "/final";
  LLAVACOT_CHECK(!stdfs::exists(final_dir + "/model.safetensors"), UsageError, run_dir,
                 " already holds a finished pretraining; choose another run.output_dir or delete it");
  LLAVACOT_CHECK(cfg.model.tokenizer.empty() || stdfs::exists(cfg.model.tokenizer), ConfigError, "model.tokenizer ",
                 cfg.model.tokenizer, " does not exist (it is copied beside the result; set it empty to skip)");
  LLAVACOT_CHECK(dist::world_from_env().world <= 1, UsageError,
                 "pretrain-vision runs in one process (it takes minutes); start it without launch/torchrun/mpirun");

  if (cfg.run.threads > 0) at::set_num_threads(static_cast<int>(cfg.run.threads));
  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  const torch::Device device = model::device_for(cfg.run.device);
  fs::create_dirs(run_dir);
  config::write_resolved(cfg, run_dir);

  // ---- data first: a broken listing fails before the model is built
  const auto pairs = read_mask_listing(vp.file);
  const model::MllamaConfig shapes = model::load_preset(cfg.model.preset);
  // The tiles the training stage will cut (data.max_image_tiles caps the canvas there too).
  vision::ImageProcessorConfig processor_config = data::image_processor_config(shapes.vision);
  if (cfg.data.max_image_tiles > 0 && cfg.data.max_image_tiles < processor_config.max_tiles)
    processor_config.max_canvas_tiles = cfg.data.max_image_tiles;
  const vision::ImageProcessor processor(processor_config);
  const int64_t max_tiles = shapes.vision.max_num_tiles, grid = shapes.vision.image_size / shapes.vision.patch_size;
  const int64_t patches = grid * grid, batch = tc.batch_size, classes = vp.num_classes, sub = vp.sub_grid, cells = sub * sub;
  LLAVACOT_CHECK(sub >= 1 && shapes.vision.patch_size % sub == 0, ConfigError, "vision_pretrain.sub_grid ", sub,
                 " must divide the patch size ", shapes.vision.patch_size);
  LOG_INFO("pretrain", vp.file, ": ", pairs.size(), " image/mask pairs, ", classes, " classes",
           sub > 1 ? str_cat(", ", sub, "x", sub, " cells a patch") : std::string(), "; ", tc.max_steps, " steps of ", batch);

  // ---- the model: vision weights freshly drawn with their own std (unless loaded), everything else frozen
  ModelConfig mc = cfg.model;
  mc.dtype = "fp32";
  auto model = model::build_model(mc, static_cast<uint64_t>(cfg.run.seed), device);
  const double init_std = vp.init_std > 0 ? vp.init_std : shapes.vision.initializer_range;
  std::vector<std::pair<std::string, torch::Tensor>> named;
  {
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.run.seed) + 1);
    for (auto& [name, p] : model->named_weights()) {
      const bool vision = name.rfind("vision_model.", 0) == 0;
      p.set_requires_grad(vision);
      if (!vision) continue;
      named.emplace_back(name, p);
      if (!cfg.model.weights.empty()) continue;
      // The same rule as init_weights, with the vision std: norms 1, biases and embedding gates 0, the rest normal.
      auto ends_with = [&name = name](const char* tail) {  // named: clang 14 cannot capture a structured binding
        const size_t n = std::char_traits<char>::length(tail);
        return name.size() >= n && name.compare(name.size() - n, n, tail) == 0;
      };
      const bool keep = name.find("norm") != std::string::npos || ends_with(".bias") || ends_with("gate");
      if (!keep) p.copy_(torch::empty(p.sizes(), torch::kFloat32).normal_(0.0, init_std, gen));
    }
  }
  torch::nn::Linear head(torch::nn::LinearOptions(shapes.vision.vision_output_dim, classes * cells));
  head->to(device);
  named.emplace_back("head.weight", head->weight);
  named.emplace_back("head.bias", head->bias);
  std::vector<torch::Tensor> params;
  for (auto& [n, p] : named) params.push_back(p);
  AdamW opt(named, AdamW::Options{tc.lr, tc.adam_beta1, tc.adam_beta2, tc.adam_eps, tc.weight_decay});
  const int64_t steps_per_epoch = (static_cast<int64_t>(pairs.size()) + batch - 1) / batch;  // for schedule: step
  const LrSchedule schedule{tc.schedule, tc.lr, tc.warmup_steps, tc.max_steps, steps_per_epoch, tc.step_gamma};
  LOG_INFO("pretrain", "vision encoder of ", cfg.model.preset, ": ", named.size() - 2, " tensors",
           cfg.model.weights.empty() ? str_cat(", fresh init std ", init_std) : str_cat(", from ", cfg.model.weights),
           "; head ", shapes.vision.vision_output_dim, " -> ", classes * cells);

  // ---- the loop: pairs in a shuffled order, a new order each pass (Fisher-Yates on mt19937_64's raw output,
  // which the standard fixes exactly, so the order is the same with every standard library)
  std::vector<size_t> order(pairs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(static_cast<uint64_t>(cfg.run.seed) * 0x9E3779B97F4A7C15ull + 7);
  auto shuffle = [&] {
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  };
  size_t cursor = order.size();
  std::ofstream metrics(run_dir + "/metrics.jsonl", std::ios::trunc);
  LLAVACOT_CHECK(metrics.good(), IoError, "cannot write ", run_dir, "/metrics.jsonl");
  VisionPretrainSummary sum;
  sum.run_dir = run_dir;
  double win_loss = 0, win_steps = 0, win_obj = 0, win_obj_ok = 0, win_all = 0, win_all_ok = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < tc.max_steps; ++step) {
    std::vector<std::vector<vision::Image>> images;
    auto labels = torch::full({batch, max_tiles, patches * cells}, -100, torch::kInt64);
    auto* lab = labels.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b) {
      if (cursor == order.size()) {
        shuffle();
        cursor = 0;
      }
      const MaskPair& pair = pairs[order[cursor++]];
      images.push_back({vision::decode_image_file(pair.image)});
      const Mask mask = decode_mask(fs::read_file(pair.mask), pair.mask);
      const auto& img = images.back().front();
      LLAVACOT_CHECK(mask.height == img.height && mask.width == img.width, FormatError, pair.mask, ": mask is ", mask.width, "x",
                     mask.height, " but its image ", pair.image, " is ", img.width, "x", img.height);
      int64_t tiles = 0;
      const auto l = patch_labels(mask, processor.config(), shapes.vision.patch_size, classes, vp.min_cover, pair.mask, &tiles, sub);
      std::copy(l.begin(), l.end(), lab + b * max_tiles * patches * cells);
    }
    if (!labels.ge(0).any().item<bool>()) {  // only padding patches (extreme aspect ratios): nothing to learn
      LOG_WARN("pretrain", "step ", step + 1, ": no labelled patch in the batch, skipped");
      continue;
    }
    at::Tensor pixel_values, ar_ids, ar_mask;
    processor.process_batch(images, pixel_values, ar_ids, ar_mask);
    labels = labels.to(device);
    const auto features = model->vision_features(pixel_values.to(device), ar_ids.to(device), ar_mask.to(device));
    // [B, 1, T, P + 1, D]: drop the class token; one logit row per cell of each patch
    const auto logits = head->forward(features.select(1, 0).narrow(2, 1, patches)).reshape({batch, max_tiles, patches * cells, classes});
    const auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, classes}), labels.reshape({-1}), torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    loss.backward();
    const double norm = grad_norm(params);
    const double lr = schedule.at(step);
    if (std::isfinite(norm)) opt.step(lr, tc.clip_grad_norm > 0 ? clip_coefficient(norm, tc.clip_grad_norm) : 1.0);
    else LOG_WARN("pretrain", "step ", step + 1, ": gradient norm ", norm, ", update skipped");
    opt.zero_grad();
    {
      torch::NoGradGuard no_grad;
      const auto pred = logits.argmax(-1);
      const auto valid = labels.ge(0), obj = labels.gt(0), ok = pred.eq(labels);
      win_all += valid.sum().item<double>();
      win_all_ok += ok.logical_and(valid).sum().item<double>();
      win_obj += obj.sum().item<double>();
      win_obj_ok += ok.logical_and(obj).sum().item<double>();
    }
    win_loss += loss.item<double>();
    win_steps += 1;
    sum.steps = step + 1;
    if (sum.steps % std::max<int64_t>(1, tc.log_every) == 0 || sum.steps == tc.max_steps) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      sum.last_loss = win_loss / win_steps;
      sum.object_accuracy = win_obj > 0 ? win_obj_ok / win_obj : 0;
      const double patch_acc = win_all > 0 ? win_all_ok / win_all : 0;
      LOG_INFO("pretrain", "step ", sum.steps, "/", tc.max_steps, " loss ", sum.last_loss, " patch accuracy ", patch_acc,
               " object-patch accuracy ", sum.object_accuracy, " lr ", lr, " ETA ",
               format_eta(elapsed / static_cast<double>(sum.steps) * static_cast<double>(tc.max_steps - sum.steps)));
      metrics << nlohmann::json{{"step", sum.steps},
                                {"loss", sum.last_loss},
                                {"patch_accuracy", patch_acc},
                                {"object_patch_accuracy", sum.object_accuracy},
                                {"lr", lr},
                                {"grad_norm", norm},
                                {"elapsed_s", elapsed}}
                     .dump()
              << "\n";
      metrics.flush();
      win_loss = win_steps = win_obj = win_obj_ok = win_all = win_all_ok = 0;
    }
  }

  // ---- the whole model, written beside and renamed into place
  const std::string tmp = run_dir + "/.final.tmp";
  stdfs::remove_all(tmp);
  model::SaveOptions exact;
  exact.dtype = torch::kFloat32;
  model::save_pretrained(model, tmp, exact);
  if (!cfg.model.tokenizer.empty() && stdfs::exists(cfg.model.tokenizer))
    fs::write_file_atomic(tmp + "/tokenizer.json", fs::read_file(cfg.model.tokenizer));
  stdfs::remove_all(final_dir);
  stdfs::rename(tmp, final_dir);
  fs::fsync_dir(run_dir);
  sum.final_dir = final_dir;
  LOG_INFO("pretrain", "done: ", sum.steps, " steps, loss ", sum.last_loss, ", object-patch accuracy ", sum.object_accuracy,
           "; model ", final_dir);
  return sum;
}

}  // namespace llavacot::train
