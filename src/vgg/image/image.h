// 8-bit images in memory, and the files they come from and go to.
//
// Readers tell formats apart by content, not by name: PNG (libpng), JPEG
// (libjpeg) and the Netpbm formats PGM/PPM (P2, P3, P5, P6, any maxval),
// which are simple enough to parse here. Every failure throws ImageError
// naming the file and what was wrong.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vgg {

struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Interleaved pixels, row by row; channels is 1 (grey), 3 (RGB) or 4 (RGBA).
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int64_t w, int64_t h, int64_t c, uint8_t fill = 0)
      : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c), fill) {}
  uint8_t* at(int64_t x, int64_t y) { return pixels.data() + (y * width + x) * channels; }
  const uint8_t* at(int64_t x, int64_t y) const { return pixels.data() + (y * width + x) * channels; }
};

Image read_image(const std::string& path);
// The same, from bytes already in memory; `what` names them in errors.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& what);
Image decode_pnm(const std::vector<uint8_t>& bytes, const std::string& what);

// What an image's header declares, read without decoding any pixel.
// channels counts what decode_image delivers after compositing grey+alpha:
// 1 for grey (grey+alpha included), 3 for colour (RGBA included).
struct ImageInfo {
  int64_t width = 0, height = 0, channels = 0;
  std::string format;  // "png", "jpeg" or "pnm"
};
// "png", "jpeg" or "pnm" from the first bytes (the decoders' magic
// numbers), "" for anything else.
std::string sniff_image_format(const uint8_t* data, size_t size);
// The header of a PNG (IHDR, its CRC included), a JPEG (libjpeg's
// jpeg_read_header: everything up to the first scan) or a PGM/PPM, from
// `data`, which may be only the start of the file. The size must pass the
// decoders' limits; a JPEG in a colour space decode_image cannot convert
// (CMYK, YCCK) is refused here. Throws ImageError naming `what` for an
// unknown format or a truncated or invalid header.
ImageInfo probe_image_header(const uint8_t* data, size_t size, const std::string& what);

// decode_image for training inputs: a JPEG is decoded by libjpeg at the
// smallest of the scales 1/8, 1/4 and 1/2 whose shorter side is still at
// least min_side (full size when none is, or when min_side <= 0), and a
// JPEG whose data ends before its image does is an error (as in PIL)
// instead of being completed in grey. Other formats as decode_image.
Image decode_image_scaled(const std::vector<uint8_t>& bytes, const std::string& what, int64_t min_side);

// Grey, RGB or RGBA, 8 bits per channel.
void write_png(const std::string& path, const Image& image);
// Grey or RGB; quality 1..100. For tests and for making sample inputs.
void write_jpeg(const std::string& path, const Image& image, int quality = 90);
// Binary PGM (grey) or PPM (RGB).
void write_pnm(const std::string& path, const Image& image);

// uint8 [channels, H, W]. Colour becomes grey by BT.601 luma (as PIL's
// convert("L")); grey becomes colour by repetition; alpha is composited
// over black, the background of Fashion-MNIST.
torch::Tensor image_to_tensor(const Image& image, int64_t channels);
// uint8 [C, H, W] with C 1 or 3 -> Image.
Image tensor_to_image(const torch::Tensor& chw);

}  // namespace vgg
