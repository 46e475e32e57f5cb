/**
 * The vocabulary file of a Hugging Face BERT folder: `vocab.txt` (transformers < 5, and CXR-BERT's published
 * folder), else `tokenizer.json` (transformers 5 saves only that). `Tokenizer.fromVocabFile` reads either.
 */
import * as fs from 'fs';
import * as path from 'path';

/** The vocabulary files a folder may hold, in the order they are preferred. */
export const FOLDER_VOCAB_FILES = ['vocab.txt', 'tokenizer.json'] as const;

/**
 * `<dir>/vocab.txt` when it exists, else `<dir>/tokenizer.json` when that exists, else null (the folder carries
 * no vocabulary).
 */
export function folderVocabFile(dir: string): string | null {
  for (const name of FOLDER_VOCAB_FILES) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  return null;
}
