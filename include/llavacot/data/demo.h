// The built-in synthetic demo dataset (`llavacot make-demo-data`): scenes drawn with OpenCV (coloured shapes,
// bar charts, arrow diagrams), questions that need looking and reasoning, four-stage answers computed from the
// scene, verification turns for a self-verifying scorer, held-out mini benchmarks in the six VLMEvalKit
// TSV formats, and a small byte-level BPE tokenizer trained on the records (tokenizer.json). Every question kind has balanced answers (spec/demo.md), so a model that ignores the image
// scores at chance. The output is a pure function of the options: the same seed gives the same bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llavacot::data {

struct DemoOptions {
  std::string out = "data/demo";  // output folder (train.jsonl, images/, masks/, vision.jsonl, bench/, manifest.json)
  uint64_t seed = 0;
  int64_t train = 4000;           // training records
  int64_t bench = 200;            // questions per benchmark (MMBench rows are its circular copies)
  int64_t image_size = 112;       // square images, pixels (>= 56)
  double verify_fraction = 0.15;  // share of training records that are verification turns
  double multi_turn_fraction = 0.1;  // share of question records with a second question about the same image
  double hint_fraction = 0.0;        // share of multiple-choice training prompts with MMBench's hint line
  double three_option_fraction = 0.25;  // share of multiple-choice training prompts with three options, not four
  int64_t vocab_size = 512;       // the demo tokenizer's size below <|image|> (the tiny preset's vocab_size)
  int64_t threads = 2;
  bool overwrite = false;         // replace an existing output folder
};

/// What was written, for the log and for manifest.json.
struct DemoSummary {
  std::string out;
  int64_t train_records = 0, verification_records = 0, multi_turn_records = 0, images = 0;
  std::map<std::string, int64_t> kinds;        // training question kind -> records
  std::map<std::string, int64_t> bench_rows;   // TSV file name -> rows
  double seconds = 0;
};

/// The names of the question kinds the generator asks (the `kind` key of each training record).
const std::vector<std::string>& demo_question_kinds();

/// The class names of the demo's segmentation masks (masks/, listed with their images in vision.jsonl), by
/// pixel value: background, each colour of each shape, each colour of bar, and the black strokes.
std::vector<std::string> demo_mask_classes();

/// The human turn of a verification record: the question as it was asked, then a candidate answer (its
/// SUMMARY, CAPTION and REASONING stages), then the request to judge it. The expected reply is a four-stage
/// answer whose CONCLUSION is `correct` or `incorrect`. A self-verifying scorer asks the same prompt.
std::string verification_prompt(const std::string& question, const std::string& candidate);

/// Generates the dataset into options.out: written under a temporary name beside it and renamed into place,
/// so an interrupted run leaves nothing half-written. Refuses an existing folder unless options.overwrite.
DemoSummary make_demo_data(const DemoOptions& options);

}  // namespace llavacot::data
