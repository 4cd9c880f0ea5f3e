#include "vgg/image/image.h"

#include <fmt/format.h>
#include <jpeglib.h>
// jpeglib.h first: jerror.h needs its types.
#include <jerror.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "vgg/io.h"

namespace vgg {
namespace {

// A 100-megapixel picture stored without compression (PPM, 3 bytes a pixel)
// is 300 MB; nothing this program reads is larger.
constexpr int64_t kMaxImageFileBytes = int64_t{320} << 20;

std::vector<uint8_t> read_bytes(const std::string& path) {
  try {
    const std::string bytes = read_regular_file(path, kMaxImageFileBytes, "image");
    return {bytes.begin(), bytes.end()};
  } catch (const FileError& e) {
    throw ImageError(e.what());
  }
}

// Compressed formats can declare any size in a few bytes; refuse before
// allocating anything larger than a very large photograph.
constexpr int64_t kMaxPixels = 100'000'000;

void check_size(int64_t w, int64_t h, const std::string& what) {
  if (w < 1 || h < 1) throw ImageError(fmt::format("{}: image size {}x{} is empty", what, w, h));
  if (w > kMaxPixels / h) {
    throw ImageError(fmt::format("{}: image size {}x{} is larger than the {} megapixels this program reads", what, w, h,
                                 kMaxPixels / 1'000'000));
  }
}

bool starts_with(const std::vector<uint8_t>& b, std::initializer_list<uint8_t> magic) {
  if (b.size() < magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), b.begin());
}

Image decode_png(const std::vector<uint8_t>& bytes, const std::string& what) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    throw ImageError(fmt::format("{}: not a readable PNG: {}", what, img.message));
  }
  const bool colour = img.format & PNG_FORMAT_FLAG_COLOR, alpha = img.format & PNG_FORMAT_FLAG_ALPHA;
  try {
    check_size(img.width, img.height, what);
  } catch (...) {
    png_image_free(&img);
    throw;
  }
  img.format = colour ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  Image out(img.width, img.height, PNG_IMAGE_PIXEL_CHANNELS(img.format));
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    throw ImageError(fmt::format("{}: corrupt PNG: {}", what, msg));
  }
  if (out.channels == 2) {  // grey + alpha: composite over black now
    Image g(out.width, out.height, 1);
    for (size_t i = 0; i < g.pixels.size(); ++i) {
      g.pixels[i] = static_cast<uint8_t>((out.pixels[2 * i] * out.pixels[2 * i + 1] + 127) / 255);
    }
    return g;
  }
  return out;
}

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  // libjpeg's own emit_message, for everything but the warnings made errors.
  void (*default_emit)(j_common_ptr, int) = nullptr;
};

extern "C" void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// libjpeg prints recoverable-corruption warnings to stderr itself; the image
// still decodes (as viewers show it), so they are not worth a line each.
extern "C" void jpeg_quiet_output(j_common_ptr) {}

// The source running out of data before the image is complete (libjpeg then
// completes the image in grey with a warning) made an error, as PIL does.
extern "C" void jpeg_emit_eof_is_error(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (msg_level < 0 && err->pub.msg_code == JWRN_JPEG_EOF) err->pub.error_exit(cinfo);
  err->default_emit(cinfo, msg_level);
}

// min_side > 0: decoded at the smallest scale 1/8, 1/4 or 1/2 whose shorter
// side is still >= min_side. strict_eof: truncated data is an error.
Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& what, int64_t min_side = 0,
                  bool strict_eof = false) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.output_message = jpeg_quiet_output;
  if (strict_eof) {
    err.default_emit = err.pub.emit_message;
    err.pub.emit_message = jpeg_emit_eof_is_error;
  }
  // Everything below until jpeg_destroy_decompress is plain C: a longjmp
  // back here skips no destructor.
  Image* out = new Image();
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    delete out;
    throw ImageError(fmt::format("{}: corrupt JPEG: {}", what, err.message));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  try {
    check_size(cinfo.image_width, cinfo.image_height, what);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    delete out;
    throw;
  }
  cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  if (min_side > 0) {
    cinfo.scale_num = 1;
    for (unsigned denom : {8u, 4u, 2u, 1u}) {
      cinfo.scale_denom = denom;
      jpeg_calc_output_dimensions(&cinfo);
      if (std::min(cinfo.output_width, cinfo.output_height) >= min_side) break;
    }
  }
  jpeg_start_decompress(&cinfo);
  out->width = cinfo.output_width;
  out->height = cinfo.output_height;
  out->channels = cinfo.output_components;
  out->pixels.resize(static_cast<size_t>(out->width * out->height * out->channels));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + static_cast<size_t>(cinfo.output_scanline) * out->width * out->channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  Image result = std::move(*out);
  delete out;
  return result;
}

// Netpbm header tokens: whitespace separated, '#' starts a comment.
class PnmReader {
 public:
  PnmReader(const std::vector<uint8_t>& b, std::string what) : b_(b), what_(std::move(what)) {}
  int64_t number(const char* field) {
    skip_space();
    if (pos_ >= b_.size() || !std::isdigit(b_[pos_])) {
      throw ImageError(fmt::format("{}: bad Netpbm header: expected the {} as a number at byte {}", what_, field, pos_));
    }
    int64_t v = 0;
    while (pos_ < b_.size() && std::isdigit(b_[pos_])) {
      v = v * 10 + (b_[pos_++] - '0');
      if (v > (1 << 24)) throw ImageError(fmt::format("{}: {} {}... is too large", what_, field, v));
    }
    return v;
  }
  size_t pos() const { return pos_; }
  void skip_one() { ++pos_; }

 private:
  void skip_space() {
    while (pos_ < b_.size()) {
      if (b_[pos_] == '#') {
        while (pos_ < b_.size() && b_[pos_] != '\n') ++pos_;
      } else if (std::isspace(b_[pos_])) {
        ++pos_;
      } else {
        break;
      }
    }
  }
  const std::vector<uint8_t>& b_;
  std::string what_;
  size_t pos_ = 2;
};

}  // namespace

Image decode_pnm(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (bytes.size() < 2 || bytes[0] != 'P' || !std::strchr("2356", bytes[1]) || bytes[1] == 0) {
    throw ImageError(fmt::format("{}: not a PGM/PPM file (expected P2, P3, P5 or P6)", what));
  }
  const char kind = static_cast<char>(bytes[1]);
  const bool ascii = kind == '2' || kind == '3';
  const int64_t channels = (kind == '3' || kind == '6') ? 3 : 1;
  PnmReader r(bytes, what);
  const int64_t w = r.number("width"), h = r.number("height"), maxval = r.number("maximum value");
  check_size(w, h, what);
  if (maxval < 1 || maxval > 65535) {
    throw ImageError(fmt::format("{}: maximum value {} is outside 1..65535", what, maxval));
  }
  // Netpbm is uncompressed: the file must hold every sample (at least two
  // bytes each in the ASCII forms), checked before allocating.
  const size_t n = static_cast<size_t>(w * h * channels);
  const size_t bytes_per = ascii ? 2 : (maxval > 255 ? 2 : 1);
  if (bytes.size() < r.pos() + n * bytes_per - (ascii ? 1 : 0)) {
    throw ImageError(fmt::format("{}: truncated: {}x{}x{} samples need {} bytes after the header, found {}", what, w, h,
                                 channels, n * bytes_per, bytes.size() - std::min(bytes.size(), r.pos())));
  }
  Image out(w, h, channels);
  auto scale = [maxval, &what](int64_t v) {
    if (v > maxval) throw ImageError(fmt::format("{}: sample {} exceeds the maximum value {}", what, v, maxval));
    return static_cast<uint8_t>((v * 255 + maxval / 2) / maxval);
  };
  if (ascii) {
    for (size_t i = 0; i < n; ++i) out.pixels[i] = scale(r.number("sample"));
    return out;
  }
  r.skip_one();  // the single whitespace byte after maxval
  if (bytes.size() < r.pos() + n * bytes_per) {
    throw ImageError(fmt::format("{}: truncated: {}x{}x{} samples need {} bytes after the header, found {}", what, w, h,
                                 channels, n * bytes_per, bytes.size() - std::min(bytes.size(), r.pos())));
  }
  const uint8_t* p = bytes.data() + r.pos();
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = bytes_per == 2 ? (p[2 * i] << 8 | p[2 * i + 1]) : p[i];
    out.pixels[i] = scale(v);
  }
  return out;
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (starts_with(bytes, {0x89, 'P', 'N', 'G'})) return decode_png(bytes, what);
  if (starts_with(bytes, {0xff, 0xd8, 0xff})) return decode_jpeg(bytes, what);
  if (bytes.size() >= 2 && bytes[0] == 'P' && std::strchr("2356", bytes[1]) && bytes[1] != 0) {
    return decode_pnm(bytes, what);
  }
  throw ImageError(fmt::format("{}: unknown image format (expected PNG, JPEG, PGM or PPM)", what));
}

Image read_image(const std::string& path) { return decode_image(read_bytes(path), path); }

namespace {

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

// libpng refuses wider or taller images by default (PNG_USER_WIDTH_MAX).
constexpr uint32_t kMaxPngSide = 1'000'000;

ImageInfo probe_png(const uint8_t* d, size_t n, const std::string& what) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  // Signature (8), IHDR length and type (8), its 13 bytes of data, CRC (4).
  if (n < 33) throw ImageError(fmt::format("{}: truncated PNG header ({} bytes; the IHDR chunk ends at 33)", what, n));
  if (!std::equal(kSignature, kSignature + 8, d)) throw ImageError(fmt::format("{}: bad PNG signature", what));
  if (be32(d + 8) != 13 || std::memcmp(d + 12, "IHDR", 4) != 0) {
    throw ImageError(fmt::format("{}: not a PNG: the first chunk is not a 13-byte IHDR", what));
  }
  const uLong crc = crc32(crc32(0L, Z_NULL, 0), d + 12, 17);
  if (crc != be32(d + 29)) throw ImageError(fmt::format("{}: corrupt PNG: IHDR CRC mismatch", what));
  const uint32_t w = be32(d + 16), h = be32(d + 20);
  const int depth = d[24], type = d[25];
  if (w > kMaxPngSide || h > kMaxPngSide) {
    throw ImageError(fmt::format("{}: PNG size {}x{} exceeds {} pixels a side", what, w, h, kMaxPngSide));
  }
  check_size(w, h, what);
  bool valid = false;
  switch (type) {
    case 0: valid = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
    case 3: valid = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
    case 2: case 4: case 6: valid = depth == 8 || depth == 16; break;
    default: break;
  }
  if (!valid) throw ImageError(fmt::format("{}: invalid PNG colour type {} with bit depth {}", what, type, depth));
  if (d[26] != 0 || d[27] != 0 || d[28] > 1) {
    throw ImageError(fmt::format("{}: invalid PNG compression, filter or interlace method ({}, {}, {})", what, d[26],
                                 d[27], d[28]));
  }
  // Colour types 2, 3 (palette) and 6 have the colour bit; 0 and 4 are grey.
  return {w, h, (type & 2) ? 3 : 1, "png"};
}

ImageInfo probe_jpeg(const uint8_t* d, size_t n, const std::string& what) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.output_message = jpeg_quiet_output;
  // Plain C until jpeg_destroy_decompress: nothing to unwind.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw ImageError(fmt::format("{}: corrupt JPEG header: {}", what, err.message));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, d, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t w = cinfo.image_width, h = cinfo.image_height;
  const J_COLOR_SPACE space = cinfo.jpeg_color_space;
  jpeg_destroy_decompress(&cinfo);
  check_size(w, h, what);
  // decode_jpeg asks libjpeg for grey or RGB, which it makes only from these.
  if (space != JCS_GRAYSCALE && space != JCS_YCbCr && space != JCS_RGB) {
    throw ImageError(fmt::format("{}: JPEG colour space {} ({}) cannot be decoded to RGB", what, static_cast<int>(space),
                                 space == JCS_CMYK ? "CMYK" : space == JCS_YCCK ? "YCCK" : "unknown"));
  }
  return {w, h, space == JCS_GRAYSCALE ? 1 : 3, "jpeg"};
}

ImageInfo probe_pnm(const uint8_t* d, size_t n, const std::string& what) {
  const std::vector<uint8_t> bytes(d, d + n);
  const char kind = static_cast<char>(bytes[1]);
  PnmReader r(bytes, what);
  const int64_t w = r.number("width"), h = r.number("height"), maxval = r.number("maximum value");
  check_size(w, h, what);
  if (maxval < 1 || maxval > 65535) {
    throw ImageError(fmt::format("{}: maximum value {} is outside 1..65535", what, maxval));
  }
  return {w, h, (kind == '3' || kind == '6') ? 3 : 1, "pnm"};
}

}  // namespace

std::string sniff_image_format(const uint8_t* data, size_t size) {
  auto starts = [&](std::initializer_list<uint8_t> magic) {
    return size >= magic.size() && std::equal(magic.begin(), magic.end(), data);
  };
  if (starts({0x89, 'P', 'N', 'G'})) return "png";
  if (starts({0xff, 0xd8, 0xff})) return "jpeg";
  if (size >= 2 && data[0] == 'P' && (data[1] == '2' || data[1] == '3' || data[1] == '5' || data[1] == '6')) {
    return "pnm";
  }
  return "";
}

ImageInfo probe_image_header(const uint8_t* data, size_t size, const std::string& what) {
  const std::string format = sniff_image_format(data, size);
  if (format == "png") return probe_png(data, size, what);
  if (format == "jpeg") return probe_jpeg(data, size, what);
  if (format == "pnm") return probe_pnm(data, size, what);
  throw ImageError(fmt::format("{}: unknown image format (expected PNG, JPEG, PGM or PPM)", what));
}

Image decode_image_scaled(const std::vector<uint8_t>& bytes, const std::string& what, int64_t min_side) {
  if (starts_with(bytes, {0xff, 0xd8, 0xff})) return decode_jpeg(bytes, what, min_side, /*strict_eof=*/true);
  return decode_image(bytes, what);
}

void write_png(const std::string& path, const Image& image) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(image.width);
  img.height = static_cast<png_uint_32>(image.height);
  switch (image.channels) {
    case 1: img.format = PNG_FORMAT_GRAY; break;
    case 3: img.format = PNG_FORMAT_RGB; break;
    case 4: img.format = PNG_FORMAT_RGBA; break;
    default: throw ImageError(fmt::format("cannot write {}: {} channels", path, image.channels));
  }
  if (!png_image_write_to_file(&img, path.c_str(), 0, image.pixels.data(), 0, nullptr)) {
    throw ImageError(fmt::format("cannot write {}: {}", path, img.message));
  }
}

void write_jpeg(const std::string& path, const Image& image, int quality) {
  if (image.channels != 1 && image.channels != 3) {
    throw ImageError(fmt::format("cannot write {} as JPEG: {} channels", path, image.channels));
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw ImageError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = static_cast<int>(image.channels);
  cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.at(0, cinfo.next_scanline));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  const bool failed = std::ferror(f) != 0;
  if (std::fclose(f) != 0 || failed) throw ImageError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

void write_pnm(const std::string& path, const Image& image) {
  if (image.channels != 1 && image.channels != 3) {
    throw ImageError(fmt::format("cannot write {} as PGM/PPM: {} channels", path, image.channels));
  }
  write_file(path, fmt::format("{}\n{} {}\n255\n", image.channels == 1 ? "P5" : "P6", image.width, image.height) +
                       std::string(image.pixels.begin(), image.pixels.end()));
}

torch::Tensor image_to_tensor(const Image& image, int64_t channels) {
  if (image.channels < 1 || image.channels > 4 || image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels)) {
    throw ImageError(fmt::format("image of {}x{}x{} has {} bytes", image.width, image.height, image.channels,
                                 image.pixels.size()));
  }
  torch::Tensor hwc = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                       {image.height, image.width, image.channels}, torch::kUInt8)
                          .to(torch::kFloat32);
  torch::Tensor rgb;
  if (image.channels == 4 || image.channels == 3) {
    rgb = hwc.narrow(2, 0, 3);
    if (image.channels == 4) rgb = rgb * hwc.narrow(2, 3, 1) / 255.0;
  }
  torch::Tensor out;
  if (channels == 1) {
    out = image.channels == 1 ? hwc : (rgb * torch::tensor({0.299f, 0.587f, 0.114f})).sum(2, /*keepdim=*/true);
  } else if (channels == 3) {
    out = image.channels == 1 ? hwc.expand({image.height, image.width, 3}) : rgb;
  } else {
    throw ImageError(fmt::format("cannot make a {}-channel input from an image (expected 1 or 3)", channels));
  }
  return out.round().clamp(0, 255).to(torch::kUInt8).permute({2, 0, 1}).contiguous();
}

Image tensor_to_image(const torch::Tensor& chw) {
  TORCH_CHECK(chw.dim() == 3 && (chw.size(0) == 1 || chw.size(0) == 3), "expected a [1|3, H, W] tensor");
  torch::Tensor hwc = chw.to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  Image out(hwc.size(1), hwc.size(0), hwc.size(2));
  std::memcpy(out.pixels.data(), hwc.data_ptr<uint8_t>(), out.pixels.size());
  return out;
}

}  // namespace vgg
