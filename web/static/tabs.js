// The side panel's tabs: buttons with role="tab" and aria-controls naming their panels.

export class Tabs {
  constructor(tablist) {
    this.tabs = [...tablist.querySelectorAll('[role="tab"]')];
    tablist.addEventListener('click', (event) => {
      const tab = event.target.closest('[role="tab"]');
      if (tab) this.show(tab.id);
    });
    tablist.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const i = this.tabs.indexOf(document.activeElement);
      const next = this.tabs[(i + step + this.tabs.length) % this.tabs.length];
      this.show(next.id);
      next.focus();
    });
  }

  get current() {
    const tab = this.tabs.find((t) => t.getAttribute('aria-selected') === 'true');
    return tab ? tab.id : null;
  }

  show(id) {
    for (const tab of this.tabs) {
      const selected = tab.id === id;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      document.getElementById(tab.getAttribute('aria-controls')).hidden = !selected;
    }
  }
}
