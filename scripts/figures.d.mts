// Types of scripts/figures.mjs, for test/readme.test.ts.
export interface FigureRow {
  measure: string
  result: string
  goal: string
  met: boolean | null
}
export interface Figures {
  date: string
  node: string
  skipped?: string[]
  rows: FigureRow[]
}
export const FIGURES_JSON: string
export const FIGURES_START: string
export const FIGURES_END: string
export function readFigures(path?: string): Figures
export function renderFigures(figures: Figures): string
