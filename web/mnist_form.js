// A drawing brought to MNIST's form, as the pipeline's Python does it for any image
// (mnist_pipeline.tools.predict.to_mnist), step for step: the ink scaled to a peak of 255,
// cropped to the pixels above a fifth of that peak, its longest side resized to 20 pixels
// with Pillow's Lanczos filter (anti-aliased), then placed in a 28x28 frame with its centre
// of mass in the middle. Python's round-half-to-even is kept, and Pillow's float images are
// float32 between its two passes, as here: both give the same pixels. One difference: the
// page knows its background (nothing drawn, 0) where Python takes the median of the image's
// border, so the two part only for a drawing that covers most of the pad's edges.

export const SIDE = 28; // MNIST's digits are 28x28
export const DIGIT_BOX = 20; // ... with the longest side of the ink scaled to 20 pixels
export const INK_THRESHOLD = 0.2; // share of the peak a pixel needs to count as the digit

/** Python's round(): to the nearest integer, halves to the even one. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sinc(x) {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x) {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** Pillow's precompute_coeffs for LANCZOS: each output pixel's first input and weights. */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 3 * filterScale;
  const result = [];
  for (let out = 0; out < outSize; out++) {
    const centre = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const end = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const weights = [];
    let total = 0;
    for (let x = first; x < end; x++) {
      const w = lanczos((x - centre + 0.5) / filterScale);
      weights.push(w);
      total += w;
    }
    result.push({ first, weights: weights.map((w) => (total !== 0 ? w / total : w)) });
  }
  return result;
}

/** Resize a float32 image (Pillow mode "F") with Lanczos: across the rows, then down. */
export function resizeLanczos(pixels, width, height, outWidth, outHeight) {
  let image = pixels;
  if (outWidth !== width) {
    const across = coefficients(width, outWidth);
    const next = new Float32Array(outWidth * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < outWidth; x++) {
        const { first, weights } = across[x];
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += image[y * width + first + k] * weights[k];
        next[y * outWidth + x] = sum;
      }
    }
    image = next;
  }
  if (outHeight !== height) {
    const down = coefficients(height, outHeight);
    const next = new Float32Array(outWidth * outHeight);
    for (let y = 0; y < outHeight; y++) {
      const { first, weights } = down[y];
      for (let x = 0; x < outWidth; x++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += image[(first + k) * outWidth + x] * weights[k];
        next[y * outWidth + x] = sum;
      }
    }
    image = next;
  }
  return image;
}

/**
 * `ink` (width x height values, 0 where nothing is drawn) as MNIST's 28x28 uint8 digit,
 * light on black; null when there is no ink at all.
 */
export function mnistForm(ink, width, height) {
  let peak = 0;
  for (let i = 0; i < ink.length; i++) if (ink[i] > peak) peak = ink[i];
  if (peak <= 0) return null;
  const gain = 255 / peak;
  const limit = INK_THRESHOLD * 255;
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] * gain > limit) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  const cropWidth = right - left + 1, cropHeight = bottom - top + 1;
  const crop = new Float32Array(cropWidth * cropHeight);
  for (let y = 0; y < cropHeight; y++) {
    for (let x = 0; x < cropWidth; x++) {
      crop[y * cropWidth + x] = ink[(top + y) * width + left + x] * gain;
    }
  }
  const factor = DIGIT_BOX / Math.max(cropWidth, cropHeight);
  const w = Math.max(1, roundHalfEven(cropWidth * factor));
  const h = Math.max(1, roundHalfEven(cropHeight * factor));
  const digit = Float64Array.from(resizeLanczos(crop, cropWidth, cropHeight, w, h), (v) =>
    Math.min(Math.max(v, 0), 255),
  );
  let total = 0, sumY = 0, sumX = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = digit[y * w + x];
      total += v;
      sumY += y * v;
      sumX += x * v;
    }
  }
  if (!(total > 0)) return null;
  const offsetY = roundHalfEven(SIDE / 2 - sumY / total);
  const offsetX = roundHalfEven(SIDE / 2 - sumX / total);
  const frame = new Uint8Array(SIDE * SIDE);
  for (let y = Math.max(offsetY, 0); y < Math.min(offsetY + h, SIDE); y++) {
    for (let x = Math.max(offsetX, 0); x < Math.min(offsetX + w, SIDE); x++) {
      frame[y * SIDE + x] = roundHalfEven(digit[(y - offsetY) * w + (x - offsetX)]);
    }
  }
  return frame;
}
