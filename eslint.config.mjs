// ESLint for the TypeScript sources (lib/, test/, bench/) and the hand-written build scripts.
// Formatting is prettier's job (.prettierrc.json); these rules catch mistakes, not style.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/*.js', '!scripts/*.js', '**/*.d.ts', 'node_modules/', 'build*/', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // Long lines that prettier cannot break (template literals, strings, URLs) are allowed; code is not.
      'max-len': [
        'error',
        { code: 160, ignoreTemplateLiterals: true, ignoreStrings: true, ignoreUrls: true, ignoreRegExpLiterals: true },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Commands and optional packages are loaded lazily with require() so `ctclip --help` does not load
      // libtorch; the output is CommonJS, so require() is the plain form of a deferred import.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // chai's property assertions (`expect(x).to.be.NaN`) are expressions, and tests read JSON of any shape.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['scripts/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
