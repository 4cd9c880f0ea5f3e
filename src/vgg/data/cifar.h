// Strict reader (and, for tests and tools, writer) of the CIFAR-10 and
// CIFAR-100 "binary version" directories, as distributed by the authors:
//
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin, test_batch.bin, each a
//              run of 3073-byte records <label><1024 R><1024 G><1024 B>;
//              class names (one per line) in batches.meta.txt.
//   CIFAR-100: train.bin, test.bin, 3074-byte records
//              <coarse label><fine label><3072 pixels>; names in
//              fine_label_names.txt and coarse_label_names.txt.
//
// Every structural fact is checked (file sizes a whole number of records,
// labels in range, all five training batches present, names files with the
// right number of lines) and a failure throws DataError naming the file,
// what was expected and what was found.
#pragma once

#include <string>
#include <vector>

#include "vgg/data/dataset.h"
#include "vgg/data/idx.h"  // DataError

namespace vgg {

enum class CifarKind { Cifar10, Cifar100 };

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;  // 3072

// What a directory holds: its kind and files. present() is false when
// neither data_batch_1.bin nor train.bin is there.
struct CifarLayout {
  CifarKind kind = CifarKind::Cifar10;
  std::vector<std::string> train_files, test_files;  // full paths, in reading order
  bool present = false;
};
CifarLayout find_cifar(const std::string& dir);

// One split: images uint8 [N, 3, 32, 32], labels int64 [N] and class names
// (from the names file when present, else "0".."9" / "0".."99"). With
// coarse (CIFAR-100 only) the 20 superclasses are the labels. limit > 0
// keeps the first `limit` records.
Dataset load_cifar(const std::string& dir, Split split, int64_t limit = 0, bool coarse = false);

// Parses the records of one file already in memory; `what` names it.
// record = 3073 (CIFAR-10) or 3074 (CIFAR-100) bytes.
Dataset parse_cifar_records(const std::vector<uint8_t>& bytes, CifarKind kind, bool coarse, const std::string& what);

// Writes a CIFAR-10 directory: the training set split in five consecutive
// batches (sizes differing by at most one), the test set, batches.meta.txt.
void write_cifar10(const std::string& dir, const Dataset& train, const Dataset& test);
// Writes a CIFAR-100 directory; coarse_* are int64 [N] superclass labels.
void write_cifar100(const std::string& dir, const Dataset& train, const torch::Tensor& train_coarse,
                    const Dataset& test, const torch::Tensor& test_coarse,
                    const std::vector<std::string>& coarse_names);

}  // namespace vgg
